/**
 * Time to the first running task of a closure that is only in a binary cache, next to a manual
 * `nix copy --from` of the same closure in the same run (issue 14, item 7).
 *
 *   npm run build && npm run bench:cache        (root; BENCH_PATHS=100 by default)
 *
 * It builds a closure of exactly BENCH_PATHS store paths (BENCH_PATHS-2 small leaves, a main
 * path whose bin/hello sleeps, busybox), pushes it to a cache directory, signs every path with
 * a key it generated and serves the directory over HTTP on a bridge address
 * (e2e/support/netns.ts). Then, each into an empty private store of its own test host (a
 * network namespace with its own /nix):
 *   - manual: `nix copy --from <cache> <main>` with the key trusted and signatures required;
 *   - driver: a Nomad client (with a server in the root namespace) whose plugin has the cache
 *     and the key, running a service job of the main path: the time from `nomad job run` to
 *     the task's state `running` (polled every 50 ms), and the driver's own part, the task
 *     events from "Task received by client" to "Task started by client".
 * It prints both, their ratio and the task's events with their times (where the driver's time
 * goes), then removes every agent, task, namespace and file.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { generateKey, makeCacheDir, pushToCache, serveCache } from '../test/support/binary-cache.js';
import { NO_SUBSTITUTERS, busyboxPath, nixString } from '../test/support/nix-fixtures.js';
import { hcl, nixJobHcl } from '../e2e/support/job-hcl.js';
import { runJob } from '../e2e/support/jobs.js';
import { killTasksOf } from '../e2e/support/leftovers.js';
import { addHost, createBridge, removeNetwork } from '../e2e/support/netns.js';
import { NomadAgent, nomadBinary } from '../e2e/support/nomad-agent.js';

const PATHS = Number(process.env.BENCH_PATHS ?? '100');

/** `n` - 2 leaves + a main path referencing them + busybox: a closure of exactly `n` paths. */
function closureOf(n: number, work: string): { main: string; closure: string[] } {
  const busybox = busyboxPath();
  const nonce = randomBytes(4).toString('hex');
  const leafDirs: string[] = [];
  for (let i = 0; i < n - 2; i += 1) {
    const dir = join(work, `leaf-${nonce}-${i}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'data'), `cache bench ${nonce}: store path ${i} of ${n}\n${randomBytes(2048).toString('base64')}\n`);
    leafDirs.push(dir);
  }
  const leaves = execFileSync('nix-store', ['--add', ...leafDirs], { encoding: 'utf8' })
    .trim()
    .split('\n');
  const script = `mkdir -p $out/bin; printf '#!%s/bin/sh\\nexec %s/bin/sleep 3600\\n' $bb $bb > $out/bin/hello; chmod +x $out/bin/hello; echo $refs > $out/refs`;
  const expr = `let bb = builtins.storePath ${nixString(busybox)}; in derivation {
    name = "cache-bench-${nonce}";
    system = builtins.currentSystem;
    builder = "\${bb}/bin/sh";
    args = [ "-c" ${nixString(script)} ];
    inherit bb;
    PATH = "\${bb}/bin";
    refs = map builtins.storePath [ ${leaves.map(nixString).join(' ')} ];
  }`;
  const main =
    execFileSync('nix-build', ['--no-out-link', ...NO_SUBSTITUTERS, '-E', expr], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop() ?? '';
  const closure = execFileSync('nix-store', ['--query', '--requisites', main], { encoding: 'utf8' }).trim().split('\n');
  if (closure.length !== n) throw new Error(`the closure has ${closure.length} paths, wanted ${n}`);
  return { main, closure };
}

interface TaskEvents {
  readonly TaskStates: Record<string, { State: string; Events: { Type: string; Time: number; DisplayMessage: string }[] }> | null;
}

async function main(): Promise<void> {
  nomadBinary();
  const work = mkdtempSync(join(tmpdir(), 'cache-bench-'));
  const tag = randomBytes(2).toString('hex');
  const bridge = createBridge(`nxb${tag}br`, '10.231.15');
  const agents: NomadAgent[] = [];
  let allocIds: string[] = [];
  const server = await serveCache(makeCacheDir(join(work, 'cache')), bridge.address);
  try {
    const { main: mainPath, closure } = closureOf(PATHS, work);
    const key = generateKey(join(work, 'keys'), 'bench-1');
    const cacheDir = join(work, 'cache');
    pushToCache(cacheDir, closure, { sign: key });
    const manualHost = addHost(bridge, `nxb${tag}m`, 21, join(work, 'manual'));
    const driverHost = addHost(bridge, `nxb${tag}d`, 22, join(work, 'driver'));

    const [file, ...args] = manualHost.wrap([
      'nix',
      'copy',
      '--extra-experimental-features',
      'nix-command',
      '--option',
      'substituters',
      '',
      '--option',
      'trusted-public-keys',
      key.publicKey,
      '--option',
      'require-sigs',
      'true',
      '--from',
      server.url,
      mainPath,
    ]) as [string, ...string[]];
    // asynchronously: the cache is served by this very process
    const t0 = performance.now();
    const copied = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.on('close', (status) => resolve({ status, stderr }));
    });
    const manualMs = performance.now() - t0;
    if (copied.status !== 0) throw new Error(`nix copy failed: ${copied.stderr}`);
    const manualNars = server.requests.filter((p) => p.startsWith('/nar/')).length;

    const nomadServer = await NomadAgent.start({ cluster: { role: 'server', name: 'server', bind: bridge.address, networkInterface: bridge.name } });
    agents.push(nomadServer);
    const client = await NomadAgent.start({
      cluster: { role: 'client', name: 'bench', bind: driverHost.address, networkInterface: 'eth0', servers: [`${bridge.address}:${nomadServer.ports.rpc}`] },
      wrapper: driverHost.wrap([]),
      pluginConfig: [
        '    state_dir    = "/nix/var/nomad-driver-nix-bench"',
        '    gc_roots_dir = "/nix/var/nix/gcroots/nomad-driver-nix-bench"',
        `    substituters = [${hcl(server.url)}]`,
        `    trusted_public_keys = [${hcl(key.publicKey)}]`,
      ].join('\n'),
    });
    agents.push(client);
    await client.nixDriver((d) => d.Healthy, 180_000);
    await nomadServer.waitFor(
      'the client node to be ready',
      async () => {
        const nodes = await nomadServer.api<{ Name: string; Status: string; Drivers: Record<string, { Healthy: boolean }> }[]>('/v1/nodes');
        const node = nodes.find((n) => n.Name === 'bench');
        return node?.Status === 'ready' && node.Drivers?.nix?.Healthy === true ? true : undefined;
      },
      180_000,
    );
    const narsBefore = server.requests.filter((p) => p.startsWith('/nar/')).length;
    const t1 = performance.now();
    const job = runJob(
      nomadServer,
      nixJobHcl({ id: 'cache-bench', type: 'service', config: `        store_path = ${hcl(mainPath)}\n        command    = "bin/hello"` }),
    );
    const running = await nomadServer.waitFor(
      'the task to run',
      async () => {
        const stubs = await nomadServer.api<{ ID: string }[]>(`/v1/job/${job}/allocations`);
        allocIds = stubs.map((s) => s.ID);
        const id = stubs[0]?.ID;
        if (id === undefined) return undefined;
        const alloc = await nomadServer.api<TaskEvents & { ClientStatus: string }>(`/v1/allocation/${id}`);
        if (alloc.ClientStatus === 'failed') throw new Error(`the task failed: ${JSON.stringify(alloc.TaskStates)}`);
        return alloc.TaskStates?.main?.State === 'running' ? alloc : undefined;
      },
      600_000,
    );
    const driverMs = performance.now() - t1;
    const events = running.TaskStates?.main?.Events ?? [];
    const at = (type: string) => events.find((e) => e.Type === type)?.Time ?? Number.NaN;
    const clientMs = (at('Started') - at('Received')) / 1e6;
    const narsFetched = server.requests.filter((p) => p.startsWith('/nar/')).length - narsBefore;

    const row = (what: string, ms: number) => `| ${what} | ${(ms / 1000).toFixed(2)} s |`;
    process.stdout.write(
      [
        `closure: ${closure.length} store paths (${mainPath}), signed, served over HTTP from ${server.url}; each run into an empty private store`,
        `NARs fetched: manual ${manualNars}, driver ${narsFetched}`,
        '',
        '| what | time |',
        '|---|---|',
        row('manual `nix copy --from <cache>` of the closure', manualMs),
        row('driver: `nomad job run` until the task runs', driverMs),
        row('driver: client events, received until started', clientMs),
        '',
        `ratio driver / manual: ${(driverMs / manualMs).toFixed(2)} (submit to running), ${(clientMs / manualMs).toFixed(2)} (client received to started)`,
        '',
        'the task events, ms after "Received":',
        ...events.map((e) => `  ${String(Math.round((e.Time - at('Received')) / 1e6)).padStart(6)}  ${e.Type}: ${e.DisplayMessage}`),
        '',
      ].join('\n'),
    );
  } finally {
    const nomadServer = agents[0];
    await nomadServer?.stopAllJobs().catch(() => undefined);
    for (const agent of [...agents].reverse()) await agent.stop().catch(() => undefined);
    killTasksOf(new Set(allocIds));
    for (const agent of agents) agent.cleanup();
    await server.close();
    removeNetwork(bridge);
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
