/**
 * What Nomad prepares for a task, without Nomad: an alloc dir with alloc/, <task>/local and
 * <task>/secrets, log files standing in for the logmon FIFOs, a plugin state_dir and a GC roots
 * dir, and the TaskConfig message for StartTask. For driver-level tests and benchmarks.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false });

export interface TaskSandbox {
  readonly allocDir: string;
  readonly stateDir: string;
  readonly gcRoots: string;
  remove(): void;
}

export function taskSandbox(): TaskSandbox {
  const allocDir = mkdtempSync(join(tmpdir(), 'nix-task-alloc-'));
  chmodSync(allocDir, 0o711);
  for (const dir of ['alloc', 'main/local', 'main/secrets']) {
    mkdirSync(join(allocDir, dir), { recursive: true });
    chmodSync(join(allocDir, dir), 0o777);
  }
  for (const f of ['stdout', 'stderr']) writeFileSync(join(allocDir, f), '', { mode: 0o666 });
  const stateDir = mkdtempSync('/var/lib/nix-task-state-');
  const gcRoots = mkdtempSync('/nix/var/nix/gcroots/nix-task-');
  return {
    allocDir,
    stateDir,
    gcRoots,
    remove() {
      for (const dir of [allocDir, stateDir, gcRoots]) rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    },
  };
}

/** The plugin config for a sandbox, msgpack-encoded as SetConfig carries it. */
export function sandboxPluginConfig(sandbox: TaskSandbox, values: Record<string, unknown> = {}): Buffer {
  const all: Record<string, unknown> = {
    allow_caps: null,
    allow_local_flakes: null,
    allow_root: null,
    allow_volumes: null,
    gc_roots_dir: sandbox.gcRoots,
    log_level: process.env.BENCH_LOG_LEVEL ?? 'warn',
    nix_bin: null,
    nix_options: null,
    substituters: [],
    runc_init: null,
    runtime: null,
    state_dir: sandbox.stateDir,
    ...values,
  };
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(all).sort()) sorted[key] = all[key];
  return packr.pack(sorted);
}

let taskCounter = 0;

/** A TaskConfig for task "main" of a fresh alloc id, running `command args` from `storePath`. */
export function sandboxTask(sandbox: TaskSandbox, storePath: string, command: string, args: readonly string[]) {
  taskCounter += 1;
  const allocId = `00000000-0000-0000-${String(process.pid % 10000).padStart(4, '0')}-${String(taskCounter).padStart(12, '0')}`;
  return {
    id: `${allocId}/main/t${taskCounter}`,
    name: 'main',
    alloc_id: allocId,
    alloc_dir: sandbox.allocDir,
    stdout_path: join(sandbox.allocDir, 'stdout'),
    stderr_path: join(sandbox.allocDir, 'stderr'),
    env: { NOMAD_TASK_NAME: 'main' },
    msgpack_driver_config: packr.pack({ args, command, flake: null, packages: [], store_path: storePath, work_dir: '' }),
  };
}

/** The driver's state key of a task id (driver/task.ts taskKey). */
export const stateKey = (taskId: string) => taskId.replace(/[^A-Za-z0-9._-]/g, '_');
