/**
 * A real Consul agent for end-to-end tests that need one: Nomad 1.11 runs `check { type =
 * "script" }` only for services with `provider = "consul"`. Built from the Go module proxy by
 * e2e/build-consul.sh (cached outside the repo, like Nomad), started as `consul agent -dev`
 * bound to 127.0.0.1 on free ports (DNS, gRPC and HTTPS off) with its own work dir as data
 * dir and TMPDIR, queried over its HTTP API, and stopped with SIGINT (SIGKILL after a grace
 * period).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentProcess, spawnLogged } from './agent-process.js';
import { freePort, REPO_ROOT } from './nomad-agent.js';

let consulPath: string | undefined;

/** The Consul binary: $CONSUL_BIN, else built (or found in the cache) by e2e/build-consul.sh. */
export function consulBinary(): string {
  if (consulPath !== undefined) return consulPath;
  if (process.env.CONSUL_BIN !== undefined && process.env.CONSUL_BIN !== '') {
    consulPath = process.env.CONSUL_BIN;
    return consulPath;
  }
  const result = spawnSync('bash', [join(REPO_ROOT, 'e2e', 'build-consul.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (result.status !== 0) throw new Error(`failed to build consul: e2e/build-consul.sh exited ${result.status}`);
  const path = result.stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(path)) throw new Error(`failed to build consul: e2e/build-consul.sh printed ${JSON.stringify(path)}`);
  consulPath = path;
  return path;
}

/** One entry of Consul's /v1/health/checks/<service>. */
export interface ConsulCheck {
  readonly CheckID: string;
  readonly Name: string;
  readonly Status: 'passing' | 'warning' | 'critical' | string;
  readonly Output: string;
  readonly ServiceName: string;
  readonly ServiceID: string;
  readonly Type: string;
}

/** A running `consul agent -dev`. */
export class ConsulAgent extends AgentProcess {
  /** host:port of the HTTP API, as Nomad's `consul { address = … }` wants it. */
  readonly httpAddress: string;

  private constructor(
    child: ChildProcess,
    workDir: string,
    logPath: string,
    readonly ports: { readonly http: number; readonly serfLan: number; readonly serfWan: number; readonly server: number },
  ) {
    super(child, workDir, logPath, `http://127.0.0.1:${ports.http}`, 'consul');
    this.httpAddress = `127.0.0.1:${ports.http}`;
  }

  /** Starts the agent and waits until it has elected itself leader (it answers the API then). */
  static async start(timeoutMs = 60_000): Promise<ConsulAgent> {
    const consul = consulBinary();
    const workDir = mkdtempSync(join(tmpdir(), 'nix-e2e-consul-'));
    const ports = { http: await freePort(), serfLan: await freePort(), serfWan: await freePort(), server: await freePort() };
    const configPath = join(workDir, 'consul.json');
    writeFileSync(
      configPath,
      JSON.stringify(
        {
          node_name: 'nix-e2e',
          data_dir: join(workDir, 'data'),
          bind_addr: '127.0.0.1',
          client_addr: '127.0.0.1',
          advertise_addr: '127.0.0.1',
          // -1: off. Nomad needs only the HTTP API (gRPC is for Connect, which we do not use)
          ports: { http: ports.http, https: -1, dns: -1, grpc: -1, grpc_tls: -1, serf_lan: ports.serfLan, serf_wan: ports.serfWan, server: ports.server },
          // sync check output to the catalog at once: by default Consul sends a check whose
          // status did not change (a TTL check starts critical, so a script exiting 2 keeps it
          // there) only every 5 minutes, and /v1/health/checks would show no output meanwhile
          check_update_interval: '0s',
          disable_update_check: true,
          log_level: 'DEBUG',
        },
        null,
        2,
      ),
    );
    const logPath = join(workDir, 'consul.log');
    const env: Record<string, string> = { ...(process.env as Record<string, string>), TMPDIR: workDir, HOME: workDir };
    // never talk to (or be configured by) some other Consul of the caller's environment
    for (const name of Object.keys(env)) if (name.startsWith('CONSUL_')) delete env[name];
    const child = spawnLogged(consul, ['agent', '-dev', `-config-file=${configPath}`], logPath, {
      cwd: workDir,
      env,
      detached: true, // own process group, as the Nomad agent
    });
    const agent = new ConsulAgent(child, workDir, logPath, ports);
    try {
      await agent.waitFor('consul to elect itself leader', async () => ((await agent.api<string>('/v1/status/leader')) !== '' ? true : undefined), timeoutMs);
    } catch (error) {
      await agent.stop();
      agent.cleanup();
      throw error;
    }
    return agent;
  }

  /** The checks of every instance of `service` (Consul's /v1/health/checks/<service>). */
  async checks(service: string): Promise<ConsulCheck[]> {
    return this.api<ConsulCheck[]>(`/v1/health/checks/${encodeURIComponent(service)}`);
  }

  /** The names of every service in the catalog (Nomad registers its own agent too). */
  async services(): Promise<string[]> {
    return Object.keys(await this.api<Record<string, string[]>>('/v1/catalog/services'));
  }

  /** Graceful stop (SIGINT: leave, then exit), SIGKILL after `timeoutMs`. */
  override stop(timeoutMs = 15_000): Promise<number | string> {
    return super.stop(timeoutMs);
  }

  /** Kills the agent's process group if it still runs and removes its work dir. */
  cleanup(): void {
    if (!this.hasExited) {
      try {
        process.kill(-this.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (process.env.NOMAD_DRIVER_NIX_KEEP_E2E !== '1') rmSync(this.workDir, { recursive: true, force: true });
  }
}
