/**
 * The "same arguments" anchor of the bwrap warm start (issue 16): bubblewrap started the way
 * the driver starts it for a running task of the closure (the holder), with its command
 * replaced by `true`, timed from spawn to exit. The argv is rendered by the driver's own code
 * (rootfs/plan.ts planRoot, runtime/bwrap/argv.ts renderBwrapArgs and splitArgsForFd) from
 * the inputs start-task.ts gives it, read back from the holder where the driver wrote them
 * (its task.json: user, cwd, capabilities, store view and /etc keys): the same namespaces,
 * --cap-drop (root tasks only), --new-session, --clearenv and --setenv, --chdir, --hostname,
 * the status, block and info fds, /nix/store, /etc, /alloc, /local, /secrets, /tmp, /proc,
 * /dev and the FHS links, all passed on `--args 5`; bwrap runs as the task user. What the
 * driver does around it is left out: the block fd holds its byte from the start (no cgroup
 * join while the sandbox waits), the info and status fds are files nobody reads, the task's
 * stdout and stderr are /dev/null, and nothing polls for the command's start.
 *
 * The rendered environment and mounts are checked against the holder's running command
 * (/proc/<pid>/environ and mountinfo), so the anchor fails loudly instead of drifting from
 * what the driver runs.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { decodeTaskFile, PERSISTED_TASK_FILE, type PersistedTask } from '../src/driver/persisted-task.js';
import { binDirs, fhsLinks, taskEnvironment } from '../src/driver/task-request.js';
import { isExecutable, realPathOf } from '../src/host/which.js';
import { lookupUser } from '../src/host/users.js';
import { planRoot, taskHome, type RootPlan } from '../src/rootfs/plan.js';
import { renderBwrapArgs, splitArgsForFd } from '../src/runtime/bwrap/argv.js';
import type { ProcessSpec } from '../src/runtime/process-spec.js';

/** The descriptors the bwrap adapter uses (src/runtime/bwrap/runtime.ts). */
const STATUS_FD = 3;
const BLOCK_FD = 4;
const ARGS_FD = 5;
const INFO_FD = 6;

export interface BwrapAnchor {
  /** bwrap's argv as the driver passes it: `--args 5 -- <closure>/bin/true`. */
  readonly argv: readonly string[];
  /** The options bwrap reads from fd 5 (NUL-terminated), as the driver writes them. */
  readonly options: readonly string[];
  /** One spawn → exit of bwrap running `true`, in ms; throws when bwrap does not exit 0. */
  run(): number;
  /** Removes the anchor's files. */
  remove(): void;
}

export interface HolderTask {
  /** The plugin's state_dir. */
  readonly stateRoot: string;
  /** Nomad's alloc dir of the task (TaskConfig.alloc_dir) and its task name. */
  readonly allocDir: string;
  readonly taskName: string;
  /** TaskConfig.env as the bench sent it. */
  readonly env: Readonly<Record<string, string>>;
  /** The closure's main output (no `packages`) and its store paths. */
  readonly main: string;
  readonly closure: readonly string[];
}

/** The holder's task.json: the only task of the state dir. */
function holderRecord(stateRoot: string): PersistedTask {
  const keys = readdirSync(join(stateRoot, 'tasks'));
  if (keys.length !== 1) throw new Error(`expected one task (the holder) in ${stateRoot}/tasks, found ${keys.length}`);
  return decodeTaskFile(JSON.parse(readFileSync(join(stateRoot, 'tasks', keys[0] ?? '', PERSISTED_TASK_FILE), 'utf8')), stateRoot);
}

/** The holder's command: the sandbox init's first child, whatever it exec'd since. */
function holderCommandPid(record: PersistedTask): number {
  const children = readFileSync(`/proc/${record.initPid}/task/${record.initPid}/children`, 'utf8').trim().split(' ');
  const pid = Number(children[0]);
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error(`the holder's sandbox init ${record.initPid} has no child`);
  return pid;
}

/** Throws unless the holder's command has exactly `env` (a shell may add PWD, SHLVL, OLDPWD) and every mount target of `plan`. */
function checkAgainstHolder(pid: number, env: Readonly<Record<string, string>>, plan: RootPlan): void {
  const shell = new Set(['PWD', 'SHLVL', 'OLDPWD']);
  const seen = Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter((entry) => entry !== '')
      .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)])
      .filter(([name]) => !shell.has(name ?? '')),
  );
  const want = Object.fromEntries(Object.entries(env).filter(([name]) => !shell.has(name)));
  if (JSON.stringify(Object.entries(seen).sort()) !== JSON.stringify(Object.entries(want).sort())) {
    throw new Error(`the anchor's environment ${JSON.stringify(want)} is not the holder's ${JSON.stringify(seen)}`);
  }
  const mounted = new Set(
    readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[4])
      .filter((target): target is string => target !== undefined),
  );
  for (const op of plan.ops) {
    if (op.kind !== 'dir' && op.kind !== 'symlink' && op.kind !== 'remount-ro' && !mounted.has(op.target)) {
      throw new Error(`the anchor mounts ${op.target} (${op.kind}), the holder has no mount there`);
    }
  }
}

/**
 * The driver's bwrap invocation for a task like `holder` (running: its state dir has exactly
 * one task), command `true`. Throws when what it renders differs from the holder's
 * environment or mounts.
 */
export function driverBwrapAnchor(bwrapPath: string, holder: HolderTask): BwrapAnchor {
  const record = holderRecord(holder.stateRoot);
  const user = lookupUser(String(record.user.uid));
  if (user === undefined) throw new Error(`no passwd entry for the holder's uid ${record.user.uid}`);
  // start-task.ts, step 5 and 8, with no volumes, devices or packages
  const home = taskHome(user.home, []);
  const plan = planRoot({
    storeView: join(holder.stateRoot, 'views', record.viewKey),
    allocDir: holder.allocDir,
    taskName: holder.taskName,
    etcDir: join(holder.stateRoot, 'etc', record.etcKey),
    extraMounts: [],
    devices: [],
    protectedHostDirs: [realpathSync(holder.stateRoot)],
    fhsLinks: fhsLinks(true, { mainOutput: holder.main, packageOutputs: [], closure: holder.closure }, { isExecutable, realPath: realPathOf }),
  });
  const env = taskEnvironment({ path: binDirs(holder.main, []).join(':'), userName: user.name, home }, holder.env);
  checkAgainstHolder(holderCommandPid(record), env, plan);
  const command = [`${holder.main}/bin/true`];
  const spec: ProcessSpec = {
    argv: command,
    env,
    cwd: record.cwd,
    uid: record.user.uid,
    gid: record.user.gid,
    hostname: hostname(),
    capabilities: record.capabilities,
  };
  const asRoot = spec.uid === 0;
  const rendered = renderBwrapArgs(plan, spec, { statusFd: STATUS_FD, shareNet: true, asRoot, blockFd: BLOCK_FD, infoFd: INFO_FD });
  const { argv, data } = splitArgsForFd(rendered, command, ARGS_FD);
  const dir = mkdtempSync(join(tmpdir(), 'start-bench-bwrap-same-'));
  const argsFile = join(dir, 'args');
  const blockFile = join(dir, 'block');
  writeFileSync(argsFile, data);
  writeFileSync(blockFile, '1');
  return {
    argv,
    options: rendered.slice(0, rendered.length - command.length - 1),
    run() {
      // opened before the clock starts: each run reads the args and the block byte from offset 0
      const fds = [openSync(join(dir, 'status'), 'w'), openSync(blockFile, 'r'), openSync(argsFile, 'r'), openSync(join(dir, 'info'), 'w')];
      try {
        const t0 = performance.now();
        const result = spawnSync(bwrapPath, argv, {
          stdio: ['ignore', 'ignore', 'pipe', ...fds],
          env: {},
          ...(asRoot ? {} : { uid: spec.uid, gid: spec.gid }),
        });
        const elapsed = performance.now() - t0;
        if (result.status !== 0)
          throw new Error(`bwrap with the driver's arguments exited ${result.status ?? result.signal}: ${result.stderr?.toString().trim()}`);
        return elapsed;
      } finally {
        for (const fd of fds) closeSync(fd);
      }
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
