/**
 * A seeded fuzzer of the plugin's gRPC edge, shared by test/fuzz.test.ts (a few thousand
 * inputs in CI) and bench/fuzz.ts (10,000 or more): StartTask, SetConfig and RecoverTask with
 * random and mutated-valid msgpack and proto fields, huge strings, deep nesting and random
 * driver_state, plus a small share of valid starts of a busybox closure (the launch path),
 * each sent to the real plugin process on its socket. It records every answer's status and
 * time, and what the plugin left behind. Same seed, same inputs.
 */
import * as grpc from '@grpc/grpc-js';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Packr } from 'msgpackr';
import { busyboxPath } from './nix-fixtures.js';
import { call, startPlugin, type RunningPlugin } from './plugin-process.js';
import { sandboxPluginConfig, taskSandbox, type TaskSandbox } from './task-sandbox.js';

const packr = new Packr({ useRecords: false });

/** mulberry32: a small, fast, seeded PRNG (floats in [0, 1)). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const int = (rng: Rng, n: number) => Math.floor(rng() * n);
const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)]!;

const ALPHABET = [
  'a',
  'Z',
  '0',
  '/',
  '.',
  '..',
  '-',
  '_',
  ' ',
  '\n',
  '\0',
  '$',
  '"',
  '\\',
  '#',
  ':',
  '=',
  'é',
  '😀',
  '\u202e',
  '%',
  '*',
  '~',
  '${NOMAD_TASK_DIR}',
];

function randomString(rng: Rng, maxLength = 40): string {
  let text = '';
  const length = int(rng, maxLength);
  for (let i = 0; i < length; i += 1) text += pick(rng, ALPHABET);
  return text;
}

/** A huge string: mostly within the 4 MiB message limit, some beyond it. */
function hugeString(rng: Rng): string {
  return pick(rng, ['A', '/', '😀', 'x/']).repeat(pick(rng, [5_000, 140_000, 300_000, 1_200_000, 5_000_000]));
}

function randomValue(rng: Rng, depth = 0): unknown {
  const kind = int(rng, depth > 4 ? 6 : 9);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return rng() < 0.5;
    case 2:
      return pick(rng, [0, -1, 1.5, 2 ** 53, -(2 ** 63), Number.NaN, 1e308, 255, 65_536]);
    case 3:
      return randomString(rng);
    case 4:
      return randomString(rng, 400);
    case 5:
      return Buffer.from(randomString(rng));
    case 6:
      return Array.from({ length: int(rng, 5) }, () => randomValue(rng, depth + 1));
    case 7:
      return Object.fromEntries(Array.from({ length: int(rng, 5) }, () => [randomString(rng, 12), randomValue(rng, depth + 1)]));
    default:
      return Object.fromEntries(
        ['command', 'args', 'store_path', 'flake', 'packages', 'work_dir', 'cap_add', 'pids_limit']
          .filter(() => rng() < 0.5)
          .map((k) => [k, randomValue(rng, depth + 1)]),
      );
  }
}

/** msgpack bytes that nest `levels` deep (arrays of one, or maps of one key). */
function deepMsgpack(rng: Rng, levels: number): Buffer {
  const head = rng() < 0.5 ? Buffer.alloc(levels, 0x91) : Buffer.concat(Array.from({ length: levels }, () => Buffer.from([0x81, 0xa1, 0x61])));
  return Buffer.concat([Buffer.from([0x81, 0xa4, ...Buffer.from('args')]), head, Buffer.from([0xc0])]);
}

/** Random, deep, huge, truncated or bit-flipped msgpack, or a mutation of `valid`. */
function fuzzMsgpack(rng: Rng, valid: Record<string, unknown>): Buffer {
  const encoded = packr.pack(valid);
  switch (int(rng, 8)) {
    case 0:
      return Buffer.from(Array.from({ length: int(rng, 64) }, () => int(rng, 256)));
    case 1:
      return deepMsgpack(rng, pick(rng, [33, 100, 10_000, 200_000]));
    case 2:
      return encoded.subarray(0, int(rng, encoded.length));
    case 3: {
      const copy = Buffer.from(encoded);
      for (let i = 0; i < 1 + int(rng, 4); i += 1) copy[int(rng, copy.length)] = int(rng, 256);
      return copy;
    }
    case 4:
      return packr.pack({ ...valid, [pick(rng, Object.keys(valid))]: hugeString(rng) });
    case 5:
      return packr.pack({ ...valid, args: Array.from({ length: pick(rng, [10, 1025, 50_000]) }, () => randomString(rng, 8)) });
    case 6:
      return packr.pack(randomValue(rng));
    default:
      return packr.pack({ ...valid, [pick(rng, Object.keys(valid))]: randomValue(rng) });
  }
}

export type Rpc = 'StartTask' | 'SetConfig' | 'RecoverTask';

export interface FuzzInput {
  readonly index: number;
  readonly rpc: Rpc;
  /** What kind of input it is (for the counts). */
  readonly kind: string;
  readonly request: unknown;
  /** A valid start: the plugin should start it (it is destroyed afterwards). */
  readonly valid: boolean;
}

export interface FuzzContext {
  readonly sandbox: TaskSandbox;
  readonly busybox: string;
  /** Marks this run's tasks (ids, alloc ids, an env var), for the leftovers check. */
  readonly marker: string;
  /** driver_state of tasks started in this run, for mutation. */
  readonly states: Buffer[];
}

let counter = 0;

function baseTask(context: FuzzContext, rng: Rng) {
  counter += 1;
  const allocId = `${context.marker}-${String(counter).padStart(6, '0')}`;
  const { sandbox } = context;
  return {
    id: `${allocId}/main/${counter}`,
    name: 'main',
    alloc_id: allocId,
    job_name: 'fuzz',
    task_group_name: 'fuzz',
    namespace: 'default',
    alloc_dir: sandbox.allocDir,
    stdout_path: join(sandbox.allocDir, 'stdout'),
    stderr_path: join(sandbox.allocDir, 'stderr'),
    env: { NOMAD_TASK_NAME: 'main', FUZZ_MARKER: context.marker },
    driver: validDriverConfig(context, rng),
  };
}

function validDriverConfig(context: FuzzContext, rng: Rng): Record<string, unknown> {
  const commands = [
    ['bin/true', []],
    ['bin/sh', ['-c', 'exit 3']],
    ['bin/sh', ['-c', 'echo hi; sleep 0.05']],
    ['bin/false', []],
  ] as const;
  const [command, args] = pick(rng, commands);
  return { args: [...args], command, flake: null, packages: [], store_path: context.busybox, work_dir: '' };
}

const TASK_FIELDS = ['id', 'name', 'alloc_id', 'alloc_dir', 'stdout_path', 'stderr_path', 'user', 'job_name', 'namespace'] as const;

/** The `index`-th input of the run seeded with `seed` (independent of the others). */
export function fuzzInput(seed: number, index: number, context: FuzzContext): FuzzInput {
  const rng = prng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const roll = rng();
  if (roll < 0.6) {
    const task = baseTask(context, rng);
    const { driver, ...fields } = task;
    const valid = rng() < 0.02;
    if (valid)
      return { index, rpc: 'StartTask', kind: 'valid start', valid: true, request: { task: { ...fields, msgpack_driver_config: packr.pack(driver) } } };
    const mutation = int(rng, 6);
    let kind: string;
    let request: Record<string, unknown>;
    if (mutation <= 1) {
      kind = 'start: fuzzed config msgpack';
      request = { task: { ...fields, msgpack_driver_config: fuzzMsgpack(rng, driver) } };
    } else if (mutation === 2) {
      kind = 'start: near-valid config (random command, args, work_dir)';
      const near = {
        ...driver,
        command: pick(rng, ['bin/sh', 'bin/nope', randomString(rng), '/bin/sh', `${context.busybox}/bin/sh`, '']),
        args: Array.from({ length: int(rng, 4) }, () => randomString(rng)),
        work_dir: pick(rng, ['', '/local', '/nope', randomString(rng), '/proc/self', '/alloc/../..']),
      };
      request = { task: { ...fields, msgpack_driver_config: packr.pack(near) } };
    } else if (mutation === 3) {
      const field = pick(rng, TASK_FIELDS);
      kind = `start: fuzzed ${field}`;
      const value = rng() < 0.3 ? hugeString(rng) : field === 'id' || field === 'alloc_id' ? `${context.marker}-${randomString(rng)}` : randomString(rng, 200);
      request = { task: { ...fields, [field]: value, msgpack_driver_config: packr.pack(driver) } };
    } else if (mutation === 4) {
      kind = 'start: fuzzed env';
      const env: Record<string, string> = { ...fields.env };
      const entries = pick(rng, [1, 10, 5_000]);
      for (let i = 0; i < entries; i += 1) env[randomString(rng, 16) || `K${i}`] = randomString(rng, 100);
      if (rng() < 0.3) env.HUGE = hugeString(rng);
      request = { task: { ...fields, env, msgpack_driver_config: packr.pack(driver) } };
    } else {
      kind = 'start: fuzzed mounts, devices, dns';
      const paths = () => pick(rng, ['/', '/etc', '/nix/store', randomString(rng), '/dev/null', '/dev/../etc/shadow', 'p'.repeat(5000)]);
      request = {
        task: {
          ...fields,
          msgpack_driver_config: packr.pack(driver),
          mounts: Array.from({ length: pick(rng, [0, 1, 3, 2000]) }, () => ({ task_path: paths(), host_path: paths(), readonly: rng() < 0.5 })),
          devices: Array.from({ length: int(rng, 3) }, () => ({ task_path: paths(), host_path: paths(), cgroup_permissions: randomString(rng, 4) })),
          dns: { servers: Array.from({ length: int(rng, 3) }, () => randomString(rng)), searches: [], options: [] },
        },
      };
    }
    return { index, rpc: 'StartTask', kind, valid: false, request };
  }
  if (roll < 0.8) {
    const good = packr.unpack(sandboxPluginConfig(context.sandbox)) as Record<string, unknown>;
    return { index, rpc: 'SetConfig', kind: 'set config: fuzzed msgpack', valid: false, request: { msgpack_config: fuzzMsgpack(rng, good) } };
  }
  const task = baseTask(context, rng);
  const { driver: _driver, ...fields } = task;
  const which = rng(); // drawn whatever the states: the same seed gives the same inputs
  const real = context.states.length > 0 ? context.states[Math.floor(which * context.states.length)]! : Buffer.from('{"version":1}');
  const states: [string, () => Buffer][] = [
    ['random bytes', () => Buffer.from(Array.from({ length: int(rng, 200) }, () => int(rng, 256)))],
    ['deep JSON', () => Buffer.from('['.repeat(pick(rng, [33, 10_000, 500_000])))],
    ['huge', () => Buffer.from(hugeString(rng))],
    ['truncated real state', () => real.subarray(0, int(rng, real.length))],
    [
      'bit-flipped real state',
      () => {
        const copy = Buffer.from(real);
        copy[int(rng, copy.length)] = int(rng, 256);
        return copy;
      },
    ],
    ['random JSON', () => Buffer.from(JSON.stringify(randomValue(rng)) ?? 'null')],
  ];
  const [kind, make] = pick(rng, states);
  return {
    index,
    rpc: 'RecoverTask',
    kind: `recover: ${kind} driver_state`,
    valid: false,
    request: {
      task_id: fields.id,
      handle: { version: 1, config: { ...fields, msgpack_driver_config: Buffer.alloc(0) }, state: 'RUNNING', driver_state: make() },
    },
  };
}

export interface FuzzResult {
  readonly seed: number;
  readonly inputs: number;
  /** Answers per outcome: `<rpc> <status>` (OK or the gRPC status name). */
  readonly outcomes: Record<string, number>;
  /** Inputs per kind. */
  readonly kinds: Record<string, number>;
  readonly validStarts: { readonly sent: number; readonly started: number; readonly failed: readonly string[] };
  readonly maxAnswerMs: number;
  readonly slowest: string;
  /** Inputs that got no answer within their deadline (the client's DEADLINE_EXCEEDED). */
  readonly unanswered: string[];
  /** INTERNAL statuses, with their message: crashes of a handler, not input errors. */
  readonly internal: string[];
  /** DestroyTask failures of tasks the run started (reported; see test/fuzz.test.ts). */
  readonly destroyErrors: string[];
  readonly rssBeforeMb: number;
  readonly rssAfterMb: number;
  readonly healthyAfter: boolean;
  readonly pluginExited: boolean;
  readonly leftovers: string[];
  readonly durationMs: number;
}

const STATUS_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([name, code]) => [code, name]));

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(match?.[1] ?? 0) / 1024);
}

/** What the run left: task state dirs, GC roots, this run's cgroups and processes. */
export function fuzzLeftovers(sandbox: TaskSandbox, marker: string): string[] {
  const tasksDir = join(sandbox.stateDir, 'tasks');
  const list = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
  const cgroups = list('/sys/fs/cgroup').flatMap((controller) => {
    const parents = [join('/sys/fs/cgroup', 'nomad-driver-nix'), join('/sys/fs/cgroup', controller, 'nomad-driver-nix')];
    return parents.flatMap((parent) =>
      list(parent)
        .filter((name) => name.includes(marker))
        .map((name) => join(parent, name)),
    );
  });
  const processes = list('/proc').filter((pid) => {
    if (!/^\d+$/.test(pid)) return false;
    try {
      return readFileSync(`/proc/${pid}/environ`, 'utf8').includes(`FUZZ_MARKER=${marker}`);
    } catch {
      return false;
    }
  });
  return [
    ...list(tasksDir).map((name) => `state ${name}`),
    ...list(sandbox.gcRoots).map((name) => `gc root ${name}`),
    ...[...new Set(cgroups)].map((path) => `cgroup ${path}`),
    ...processes.map((pid) => `process ${pid}`),
  ];
}

export interface FuzzOptions {
  readonly seed: number;
  readonly inputs: number;
  /** Calls in flight at once. */
  readonly concurrency: number;
  /** Deadline of one answer (StartTask realises and launches; the rest answer at once). */
  readonly startDeadlineMs: number;
  readonly deadlineMs: number;
  readonly runtime: 'bwrap' | 'runc';
  readonly onProgress?: (done: number) => void;
}

/** Runs `inputs` fuzz inputs against a fresh plugin process and sandbox; removes both after. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzResult> {
  const started = performance.now();
  const sandbox = taskSandbox();
  const marker = `fuzz${process.pid}x${options.seed.toString(36)}`;
  const context: FuzzContext = { sandbox, busybox: busyboxPath(), marker, states: [] };
  let plugin: RunningPlugin | undefined;
  try {
    plugin = await startPlugin();
    const client = plugin.clients;
    const goodConfig = { msgpack_config: sandboxPluginConfig(sandbox, { runtime: options.runtime }) };
    await call(client.base, 'SetConfig', goodConfig);
    const rssBeforeMb = rssMb(plugin.child.pid!);
    const outcomes: Record<string, number> = {};
    const kinds: Record<string, number> = {};
    const unanswered: string[] = [];
    const internal: string[] = [];
    const destroyErrors: string[] = [];
    let maxAnswerMs = 0;
    let slowest = '';
    let validSent = 0;
    let validStarted = 0;
    let next = 0;
    let done = 0;
    // SetConfig inputs may change the config: each runs alone (no other call in flight), then
    // the good config is restored
    let active = 0;
    let exclusive: Promise<void> | undefined;
    const idle: (() => void)[] = [];
    const shared = async (fn: () => Promise<void>) => {
      while (exclusive !== undefined) await exclusive;
      active += 1;
      try {
        await fn();
      } finally {
        active -= 1;
        if (active === 0) for (const wake of idle.splice(0)) wake();
      }
    };
    const alone = async (fn: () => Promise<void>) => {
      while (exclusive !== undefined) await exclusive;
      let release = () => {};
      exclusive = new Promise<void>((resolve) => (release = resolve));
      try {
        while (active > 0) await new Promise<void>((resolve) => idle.push(resolve));
        await fn();
      } finally {
        exclusive = undefined;
        release();
      }
    };
    const failedValid: string[] = [];

    const runOne = async (input: FuzzInput) => {
      kinds[input.kind] = (kinds[input.kind] ?? 0) + 1;
      const deadline = input.rpc === 'StartTask' ? options.startDeadlineMs : options.deadlineMs;
      const stub = input.rpc === 'SetConfig' ? client.base : client.driver;
      if (input.valid) validSent += 1;
      const t0 = performance.now();
      let status = 'OK';
      let response: unknown;
      try {
        response = await call(stub, input.rpc, input.request, deadline);
      } catch (error) {
        const e = error as grpc.ServiceError;
        status = STATUS_NAMES[e.code] ?? String(e.code);
        const ms = performance.now() - t0;
        if (e.code === grpc.status.DEADLINE_EXCEEDED && ms >= deadline - 50) unanswered.push(`#${input.index} ${input.kind}: no answer within ${deadline} ms`);
        if (input.valid) {
          const stderrTail = readFileSync(join(sandbox.allocDir, 'stderr'), 'utf8')
            .split('\n')
            .filter((l) => l.startsWith('bwrap'))
            .slice(-2)
            .join(' | ');
          failedValid.push(`#${input.index}: ${e.code} ${String(e.details).slice(0, 300)} (stderr: ${stderrTail})`);
        }
        if (e.code === grpc.status.INTERNAL) internal.push(`#${input.index} ${input.kind}: ${String(e.details).slice(0, 300)}`);
      }
      const ms = performance.now() - t0;
      if (ms > maxAnswerMs) {
        maxAnswerMs = ms;
        slowest = `#${input.index} ${input.rpc} (${input.kind}) ${status}`;
      }
      const key = `${input.rpc} ${status}`;
      outcomes[key] = (outcomes[key] ?? 0) + 1;
      if (input.rpc === 'StartTask' && status === 'OK') {
        if (input.valid) validStarted += 1;
        const handle = (response as { handle?: { driver_state?: Buffer } }).handle;
        if (handle?.driver_state !== undefined && context.states.length < 20) context.states.push(Buffer.from(handle.driver_state));
        const taskId = (input.request as { task: { id: string } }).task.id;
        await call(client.driver, 'DestroyTask', { task_id: taskId, force: true }, options.deadlineMs * 3).catch((error: unknown) => {
          destroyErrors.push(`#${input.index} DestroyTask after a start: ${(error as Error).message}`);
        });
      }
    };

    const worker = async () => {
      for (;;) {
        const index = next;
        next += 1;
        if (index >= options.inputs) return;
        const input = fuzzInput(options.seed, index, context);
        if (input.rpc === 'SetConfig') {
          await alone(async () => {
            await runOne(input);
            await call(client.base, 'SetConfig', goodConfig);
          });
        } else {
          await shared(() => runOne(input));
        }
        done += 1;
        options.onProgress?.(done);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, () => worker()));

    const healthyAfter = await call<object, { status: string }>(client.health, 'Check', { service: 'plugin' }, options.deadlineMs)
      .then((r) => r.status === 'SERVING')
      .catch(() => false);
    const pluginExited = plugin.child.exitCode !== null || plugin.child.signalCode !== null;
    const rssAfterMb = pluginExited ? 0 : rssMb(plugin.child.pid!);
    // a destroyed task's processes may take a moment to be gone
    let leftovers = fuzzLeftovers(sandbox, marker);
    for (let i = 0; i < 50 && leftovers.length > 0; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      leftovers = fuzzLeftovers(sandbox, marker);
    }
    return {
      seed: options.seed,
      inputs: options.inputs,
      outcomes,
      kinds,
      validStarts: { sent: validSent, started: validStarted, failed: failedValid },
      maxAnswerMs: Math.round(maxAnswerMs),
      slowest,
      unanswered,
      internal,
      destroyErrors,
      rssBeforeMb,
      rssAfterMb,
      healthyAfter,
      pluginExited,
      leftovers,
      durationMs: Math.round(performance.now() - started),
    };
  } finally {
    plugin?.kill('SIGTERM');
    await plugin?.exited;
    sandbox.remove();
  }
}
