/**
 * A real Nomad agent for end-to-end tests: built from the Go module proxy by
 * e2e/build-nomad.sh (cached outside the repo), started with our plugin directory and a
 * `plugin "nix" {}` block, queried over its HTTP API, and stopped with a check that nothing
 * it started is left running.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentProcess, spawnLogged } from './agent-process.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const PLUGIN_DIR = process.env.NOMAD_DRIVER_NIX_PLUGIN_DIR ?? join(REPO_ROOT, 'build', 'plugins');
export const PLUGIN_MAIN = join(REPO_ROOT, 'dist', 'src', 'main.js');

let nomadPath: string | undefined;

/** The Nomad binary: $NOMAD_BIN, else built (or found in the cache) by e2e/build-nomad.sh. */
export function nomadBinary(): string {
  if (nomadPath !== undefined) return nomadPath;
  if (process.env.NOMAD_BIN !== undefined && process.env.NOMAD_BIN !== '') {
    nomadPath = process.env.NOMAD_BIN;
    return nomadPath;
  }
  const result = spawnSync('bash', [join(REPO_ROOT, 'e2e', 'build-nomad.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (result.status !== 0) throw new Error(`failed to build nomad: e2e/build-nomad.sh exited ${result.status}`);
  const path = result.stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(path)) throw new Error(`failed to build nomad: e2e/build-nomad.sh printed ${JSON.stringify(path)}`);
  nomadPath = path;
  return path;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface AgentOptions {
  /** HCL inside `plugin "nix" { config { … } }`; omitted: an empty `plugin "nix" {}`. */
  readonly pluginConfig?: string;
  /** HCL lines appended inside the agent's `client { … }` block (e.g. `host_volume` blocks). */
  readonly clientConfig?: string;
  /** Top-level HCL appended to the agent's configuration (e.g. other plugins' blocks). */
  readonly extraConfig?: string;
  /** Extra environment for the agent (and so for the plugin it launches). */
  readonly env?: Record<string, string>;
  /** Replace the agent's PATH (the plugin inherits it). */
  readonly path?: string;
  /** A command the agent runs under (e.g. `unshare …` to give it a mount namespace of its own). */
  readonly wrapper?: readonly string[];
  /**
   * Run a real (non-dev) agent, server and client in one, with its data_dir in the work dir,
   * so a restarted agent (`restartOf`: same dir, same ports) recovers its tasks. Otherwise
   * `nomad agent -dev`, which persists nothing.
   */
  readonly persistent?: boolean;
  /** Reuse a work dir (and its ports) of an earlier agent: a restart. */
  readonly restartOf?: NomadAgent;
  /**
   * host:port of a Consul agent's HTTP API (e2e/support/consul-agent.ts `httpAddress`): the
   * agent gets `consul { address = … }`, so `provider = "consul"` services (and their script
   * checks) are registered there. Omitted: Nomad's default, a Consul it will not find.
   */
  readonly consulAddress?: string;
  /** The agent's -plugin-dir; omitted: PLUGIN_DIR (this build's launcher). */
  readonly pluginDir?: string;
  /**
   * One agent of a multi-node cluster (persistent, whatever `persistent` says): a server alone
   * or a client alone, bound to and advertising `bind` (an address of a network namespace the
   * test made), fingerprinting `networkInterface`, named `name`; a client joins `servers`
   * (host:rpc-port). Omitted: one agent that is server and client on 127.0.0.1.
   */
  readonly cluster?: {
    readonly role: 'server' | 'client';
    readonly name: string;
    readonly bind: string;
    readonly networkInterface: string;
    readonly servers?: readonly string[];
  };
}

export interface DriverInfo {
  readonly Detected: boolean;
  readonly Healthy: boolean;
  readonly HealthDescription: string;
  readonly Attributes: Record<string, string> | null;
}

/** A running `nomad agent -dev` with the nix plugin. */
export class NomadAgent extends AgentProcess {
  private constructor(
    child: ChildProcess,
    workDir: string,
    logPath: string,
    readonly ports: { readonly http: number; readonly rpc: number; readonly serf: number },
    /** The address the agent binds and advertises (127.0.0.1 unless `cluster` says otherwise). */
    readonly bindAddress = '127.0.0.1',
    /** The node name to find in /v1/nodes (a cluster agent's `name`); omitted: the only node. */
    readonly nodeName?: string,
  ) {
    super(child, workDir, logPath, `http://${bindAddress}:${ports.http}`, 'agent');
  }

  static async start(options: AgentOptions = {}): Promise<NomadAgent> {
    const nomad = nomadBinary();
    const workDir = options.restartOf?.workDir ?? mkdtempSync(join(tmpdir(), 'nix-e2e-agent-'));
    // tasks run as unprivileged users, and their bwrap binds alloc dirs from below here
    chmodSync(workDir, 0o711);
    const { http, rpc, serf } = options.restartOf?.ports ?? { http: await freePort(), rpc: await freePort(), serf: await freePort() };
    const plugin = options.pluginConfig === undefined ? 'plugin "nix" {}' : `plugin "nix" {\n  config {\n${options.pluginConfig}\n  }\n}`;
    const cluster = options.cluster ?? options.restartOf?.cluster;
    const bind = cluster?.bind ?? '127.0.0.1';
    const persistent = options.persistent === true || cluster !== undefined;
    const configPath = join(workDir, 'agent.hcl');
    writeFileSync(
      configPath,
      [
        `ports {\n  http = ${http}\n  rpc  = ${rpc}\n  serf = ${serf}\n}`,
        `client {\n  cni_path = "/usr/lib/cni"\n${options.clientConfig ?? ''}\n}`,
        ...(cluster === undefined ? [] : [`name = ${JSON.stringify(cluster.name)}`]),
        ...(persistent ? [`advertise {\n  http = "${bind}"\n  rpc  = "${bind}"\n  serf = "${bind}"\n}`] : []),
        // what `-dev` turns on, and the README's client config too: without it Nomad's client
        // opens no TaskStats stream (client/allocrunner/taskrunner/stats_hook.go)
        ...(persistent ? ['telemetry {\n  publish_allocation_metrics = true\n}'] : []),
        ...(options.consulAddress === undefined ? [] : [`consul {\n  address = "${options.consulAddress}"\n}`]),
        plugin,
        options.extraConfig ?? '',
        '',
      ].join('\n'),
    );
    const logPath = join(workDir, 'agent.log');
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      NOMAD_DRIVER_NIX_LOG_LEVEL: 'debug',
      // -dev keeps its client state in $TMPDIR/NomadClient*: inside workDir it goes with it
      TMPDIR: workDir,
      ...options.env,
    };
    // Nomad's AWS fingerprinter refuses to start the agent when AWS_CA_BUNDLE is set but
    // unusable ("failed to setup IMDS client"), which some CI images do
    delete env.AWS_CA_BUNDLE;
    if (options.path !== undefined) env.PATH = options.path;
    const dataDir = join(workDir, 'data');
    if (persistent) {
      mkdirSync(dataDir, { recursive: true, mode: 0o711 });
      chmodSync(dataDir, 0o711);
    }
    const mode =
      cluster?.role === 'server'
        ? ['-server', '-bootstrap-expect=1', `-data-dir=${dataDir}`, `-network-interface=${cluster.networkInterface}`]
        : cluster?.role === 'client'
          ? ['-client', `-servers=${(cluster.servers ?? []).join(',')}`, `-data-dir=${dataDir}`, `-network-interface=${cluster.networkInterface}`]
          : persistent
            ? ['-server', '-client', '-bootstrap-expect=1', `-data-dir=${dataDir}`, '-network-interface=lo']
            : ['-dev'];
    const agentArgv = [nomad, 'agent', ...mode, `-bind=${bind}`, '-log-level=DEBUG', `-plugin-dir=${options.pluginDir ?? PLUGIN_DIR}`, `-config=${configPath}`];
    const [file, ...args] = [...(options.wrapper ?? []), ...agentArgv] as [string, ...string[]];
    const child = spawnLogged(file, args, logPath, {
      cwd: workDir,
      env,
      detached: true, // own process group: a Ctrl-C of the test run does not hit it twice
    });
    const agent = new NomadAgent(child, workDir, logPath, { http, rpc, serf }, bind, cluster?.name);
    agent.cluster = cluster;
    return agent;
  }

  /** The cluster role this agent was started with (kept for a restart). */
  cluster: AgentOptions['cluster'];

  /** The node's `nix` driver entry once the plugin has fingerprinted. */
  async nixDriver(predicate: (d: DriverInfo) => boolean = () => true, timeoutMs = 60_000): Promise<{ node: Record<string, any>; driver: DriverInfo }> {
    return this.waitFor(
      'the nix driver fingerprint',
      async () => {
        const nodes = await this.api<{ ID: string; Name: string }[]>('/v1/nodes');
        const id = (this.nodeName === undefined ? nodes[0] : nodes.find((n) => n.Name === this.nodeName))?.ID;
        if (id === undefined) return undefined;
        const node = await this.api<Record<string, any>>(`/v1/node/${id}`);
        const driver = node.Drivers?.nix as DriverInfo | undefined;
        if (driver === undefined || !predicate(driver)) return undefined;
        return { node, driver };
      },
      timeoutMs,
    );
  }

  /** Waits for the agent to exit by itself (e.g. a config it refuses). */
  async waitForExit(timeoutMs: number): Promise<number | string | undefined> {
    return Promise.race([this.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), timeoutMs))]);
  }

  /**
   * Stops every job (so their tasks end: tasks outlive agents by design) and waits until no
   * allocation runs.
   */
  async stopAllJobs(timeoutMs = 60_000): Promise<void> {
    if (this.hasExited) return;
    const jobs = await this.api<{ ID: string }[]>('/v1/jobs').catch(() => []);
    for (const job of jobs) await fetch(`${this.address}/v1/job/${job.ID}?purge=true`, { method: 'DELETE' }).catch(() => undefined);
    await this.waitFor(
      'every allocation to stop',
      async () => {
        const allocs = await this.api<{ ClientStatus: string }[]>('/v1/allocations');
        return allocs.every((a) => a.ClientStatus !== 'running' && a.ClientStatus !== 'pending') ? true : undefined;
      },
      timeoutMs,
    ).catch(() => undefined);
  }

  /**
   * Kills the agent if it still runs, every process still using the work dir (tasks of a
   * crashed run), unmounts what Nomad left mounted there (secrets and private tmpfs), and
   * removes it.
   */
  cleanup(): void {
    if (!this.hasExited) {
      try {
        process.kill(-this.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const pid of processesMentioning(this.workDir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[4] ?? '')
      .filter((mountPoint) => mountPoint.startsWith(`${this.workDir}/`))
      .sort((a, b) => b.length - a.length);
    for (const mountPoint of mounts) spawnSync('umount', ['-l', mountPoint]);
    if (process.env.NOMAD_DRIVER_NIX_KEEP_E2E !== '1') {
      try {
        rmSync(this.workDir, { recursive: true, force: true });
      } catch (error) {
        process.stderr.write(`could not remove ${this.workDir}: ${String(error)}\n`);
      }
    }
  }
}

/** Pids of every running process of our plugin (node running dist/src/main.js). */
export function pluginPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline.includes(PLUGIN_MAIN)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** Pids whose command line or environment mentions `text`. */
export function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      // the command line (a task's bwrap binds dirs below it) or the environment (the plugin
      // the agent started inherits TMPDIR=<work dir>)
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text) || readFileSync(`/proc/${entry}/environ`, 'utf8').includes(text)) {
        pids.push(Number(entry));
      }
    } catch {
      // gone
    }
  }
  return pids;
}

/** The process helpers the driver itself uses, for the tests' own checks. */
export { childPids as childrenOf, isRunning as isAlive } from '../../src/host/proc.js';
