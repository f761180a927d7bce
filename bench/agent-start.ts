/**
 * Job submit to the task's Started event through one real Nomad agent, for the nix driver
 * (bwrap and runc, one agent each) next to Nomad's own raw_exec and exec drivers on the same
 * agent, all running busybox `sleep`.
 *
 *   npm run build && node dist/bench/agent-start.js [runs]      (root; default 5 runs each)
 *
 * Each run submits a fresh job over the HTTP API (the HCL is parsed once by /v1/jobs/parse)
 * and takes the time from just before the POST to the Started event's own timestamp; then
 * the job is purged. Runs of the drivers of one agent are interleaved. exec needs a Nomad
 * built with cgo: the bench uses $NOMAD_BIN when set, else builds (once, cached) one with
 * `NOMAD_DRIVER_NIX_CGO=1 e2e/build-nomad.sh` in its own cache dir; when the agent does not
 * detect exec, its row says so. exec gets a `chroot_env` of busybox alone (Nomad's default
 * chroot copies much of the host's /usr and /lib into each task: ~22 s a task here).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { type Allocation, taskState } from '../e2e/support/jobs.js';
import { hcl, hclList, nixJobHcl, storeConfig } from '../e2e/support/job-hcl.js';
import { REPO_ROOT } from '../e2e/support/nomad-agent.js';
import { type RuntimeName, startTaskAgent, type TaskAgent } from '../e2e/support/task-agent.js';
import { busyboxPath } from '../test/support/nix-fixtures.js';
import { median, reportFigure } from './figures.js';

type Driver = 'nix' | 'raw_exec' | 'exec';

/** The Nomad to run: $NOMAD_BIN, else the cgo build (built now when it is not cached). */
function cgoNomad(): string {
  if (process.env.NOMAD_BIN !== undefined && process.env.NOMAD_BIN !== '') return process.env.NOMAD_BIN;
  const cache = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'nomad-driver-nix', 'cgo');
  return execFileSync('bash', [join(REPO_ROOT, 'e2e', 'build-nomad.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NOMAD_DRIVER_NIX_CGO: '1', NOMAD_DRIVER_NIX_CACHE: cache },
  })
    .trim()
    .split('\n')
    .pop() as string;
}

function jobHcl(driver: Driver, busybox: string): string {
  if (driver === 'nix') return nixJobHcl({ id: 'bench', type: 'service', config: storeConfig(busybox, 'bin/sleep', ['600']) });
  return nixJobHcl({ id: 'bench', type: 'service', config: `        command = ${hcl(`${busybox}/bin/sleep`)}\n        args    = ${hclList(['600'])}` }).replace(
    'driver = "nix"',
    `driver = "${driver}"`,
  );
}

async function post<T>(agent: TaskAgent, path: string, body: unknown, method = 'POST'): Promise<T> {
  const response = await fetch(`${agent.agent.address}${path}`, { method, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/** Submit to Started, in ms, of one fresh job from `job` (parsed JSON); the job is purged after. */
async function oneRun(agent: TaskAgent, job: Record<string, unknown>, id: string): Promise<number> {
  const t0 = Date.now();
  await post(agent, '/v1/jobs', { Job: { ...job, ID: id, Name: id } });
  const alloc = await agent.agent.waitFor(
    `task of ${id} started`,
    async () => {
      const stubs = await agent.agent.api<{ ID: string }[]>(`/v1/job/${id}/allocations`);
      const first = stubs[0];
      if (first === undefined) return undefined;
      const a = await agent.agent.api<Allocation>(`/v1/allocation/${first.ID}`);
      const state = taskState(a, 'main');
      if (state?.Failed === true || state?.State === 'dead') throw new Error(`${id} failed: ${JSON.stringify(state.Events.map((e) => e.DisplayMessage))}`);
      return state?.Events.some((e) => e.Type === 'Started') === true ? a : undefined;
    },
    120_000,
  );
  const events = (alloc.TaskStates?.main?.Events ?? []) as ReadonlyArray<{ Type: string; Time?: number }>;
  const started = events.find((e) => e.Type === 'Started')?.Time ?? Number.NaN;
  await post(agent, `/v1/job/${id}?purge=true`, undefined, 'DELETE');
  return started / 1e6 - t0;
}

async function measure(runtime: RuntimeName, drivers: readonly Driver[], runs: number, busybox: string): Promise<Map<Driver, number | string>> {
  const agent = await startTaskAgent(`bench-${runtime}`, {
    runtime,
    extraConfig: 'plugin "raw_exec" {\n  config {\n    enabled = true\n  }\n}',
    clientConfig: `  chroot_env {\n    ${hcl(busybox)} = ${hcl(busybox)}\n  }`,
  });
  const results = new Map<Driver, number | string>();
  try {
    const node = (await agent.agent.api<{ ID: string }[]>('/v1/nodes'))[0];
    const info = await agent.agent.api<{ Drivers: Record<string, { Detected: boolean; Healthy: boolean }> }>(`/v1/node/${node?.ID}`);
    const usable = drivers.filter((d) => {
      const ok = info.Drivers[d]?.Detected === true && info.Drivers[d]?.Healthy === true;
      if (!ok) results.set(d, `not detected by this Nomad (${info.Drivers[d] === undefined ? 'absent' : 'unhealthy'})`);
      return ok;
    });
    const jobs = new Map<Driver, Record<string, unknown>>();
    for (const d of usable)
      jobs.set(d, (await post<Record<string, unknown>>(agent, '/v1/jobs/parse', { JobHCL: jobHcl(d, busybox), Canonicalize: true })) ?? {});
    const times = new Map<Driver, number[]>(usable.map((d) => [d, []]));
    // one warm-up run each (closure realised, store view built, images cached), then interleaved runs
    for (const d of usable) await oneRun(agent, jobs.get(d) ?? {}, `bench-${d}-warmup`);
    for (let i = 0; i < runs; i += 1) {
      for (const d of usable) times.get(d)?.push(await oneRun(agent, jobs.get(d) ?? {}, `bench-${d}-${i}`));
    }
    for (const d of usable) results.set(d, median(times.get(d) ?? []));
    console.error(`[${runtime}] ${JSON.stringify(Object.fromEntries(times))}`);
  } finally {
    await agent.close();
  }
  return results;
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 5);
  process.env.NOMAD_BIN = cgoNomad();
  const busybox = busyboxPath();
  const bwrap = await measure('bwrap', ['nix', 'raw_exec', 'exec'], runs, busybox);
  const runc = await measure('runc', ['nix'], runs, busybox);
  const rawExec = bwrap.get('raw_exec');
  console.log(`job submit (HTTP API) to the task's Started event, median of ${runs} runs each; Nomad ${process.env.NOMAD_BIN}`);
  console.log('');
  console.log('| driver | ms | / raw_exec |');
  console.log('|---|---|---|');
  const rows: Array<[string, number | string | undefined]> = [
    ['nix (bwrap)', bwrap.get('nix')],
    ['nix (runc)', runc.get('nix')],
    ['raw_exec', rawExec],
    ['exec (chroot_env: busybox)', bwrap.get('exec')],
  ];
  for (const [name, value] of rows) {
    const ratio = typeof value === 'number' && typeof rawExec === 'number' ? `${(value / rawExec).toFixed(2)}x` : '–';
    console.log(`| ${name} | ${typeof value === 'number' ? value.toFixed(0) : (value ?? '–')} | ${ratio} |`);
    if (name !== 'raw_exec')
      reportFigure({
        figure: `job to running, ${name}${typeof value === 'string' ? `: ${value}` : ''}`,
        value: typeof value === 'number' ? value : Number.NaN,
        unit: 'ms',
        anchor: 'raw_exec, same agent',
        anchorValue: typeof rawExec === 'number' ? rawExec : Number.NaN,
      });
  }
}

await main();
