/**
 * Runs tasks with runc, from the same root plan as bubblewrap: the plan is rendered to an OCI
 * config (runc/oci-config.ts), the task's state dir is the OCI bundle, and a small monitor
 * (runc/monitor.ts) runs `runc run` in the foreground so the exit code is on disk even when
 * the plugin is not running. runc starts as root and switches to the task user itself.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { failure } from '../../errors.js';
import { runCommand } from '../../host/exec.js';
import { createDirectory, createSymlink, entryKind, removeFile, writeTextFile } from '../../host/fs.js';
import { processStartTime, signalProcess } from '../../host/proc.js';
import { sameProcess, waitForValue, watchDetachedExit } from '../detached-exit.js';
import { signalThenKill } from '../stop.js';
import { openAll, openForWriting, readFile } from '../../host/task-files.js';
import { HOST_PATH } from '../process-spec.js';
import type { ExecSpec, ExitStatus, HostCommand, LaunchRequest, LaunchedTask, RecoveryRecord, Runtime } from '../runtime.js';
import { execArgs, renderExecProcess } from './exec.js';
import { CONFIG_FILE, EXIT_FILE, LOG_FILE, PID_FILE, ROOTFS_DIR, monitorArgs, parseExitFile, parsePidFile, runcLogErrors } from './monitor.js';
import { renderOciConfig } from './oci-config.js';

export interface RuncRuntimeOptions {
  readonly runcPath: string;
  /** A statically linked tini (Debian: /usr/bin/tini-static), bound at /dev/init in every task. */
  readonly initPath: string;
  /** runc's `--root`: its own state of our containers, apart from other runc users'. */
  readonly runcRoot: string;
  /** The host's POSIX shell for the monitor. */
  readonly shellPath: string;
}

export class RuncRuntime implements Runtime {
  readonly name = 'runc';
  readonly mountsAsTaskUser = false;
  readonly ambientCapabilities = true;

  constructor(private readonly options: RuncRuntimeOptions) {}

  async launch(request: LaunchRequest): Promise<LaunchedTask> {
    const { runcPath, initPath, runcRoot, shellPath } = this.options;
    const bundle = request.stateDir;
    const containerId = request.key;
    const { config, rootfsEntries } = renderOciConfig(request.plan, request.process, {
      initPath,
      // runc joins the cgroup the driver prepared (and re-applies the limits) before the
      // container's init starts
      cgroupsPath: request.cgroup.path,
      arch: process.arch,
      ...(request.networkNamespace === undefined ? {} : { networkNamespace: request.networkNamespace }),
      ...(request.limits === undefined ? {} : { limits: request.limits }),
    });
    const rootfs = join(bundle, ROOTFS_DIR);
    await createDirectory(rootfs, 0o755);
    for (const entry of rootfsEntries) {
      if (entry.kind === 'dir') await createDirectory(join(rootfs, entry.path), 0o755);
      else await createSymlink(entry.linkTarget, join(rootfs, entry.path));
    }
    await writeTextFile(join(bundle, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`, 0o600);

    // all or none: a failed open closes the other (openAll)
    const [stdout, stderr] = (await openAll([() => openForWriting(request.stdoutPath), () => openForWriting(request.stderrPath)])) as [FileHandle, FileHandle];
    let child;
    try {
      child = spawn(shellPath, monitorArgs(runcPath, runcRoot, bundle, containerId), {
        detached: true, // own session: survives the plugin, gets no terminal signals
        stdio: ['ignore', stdout.fd, stderr.fd],
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      });
    } finally {
      await Promise.all([stdout.close(), stderr.close()]);
    }
    const pid = child.pid;
    if (pid === undefined) {
      const error = await new Promise<Error>((resolve) => child.once('error', resolve));
      throw failure('launch task', `cannot run ${shellPath}: ${error.message}`, { code: 'failed_precondition', fix: 'install a POSIX shell at /bin/sh on the client' });
    }
    child.unref();
    const monitorExited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const exited = monitorExited.then(async ({ code }) => exitStatusOf(await readExitCode(bundle), code));

    // runc writes the container init's pid file once the container started
    const initPid = await waitForValue(bundle, () => readPid(bundle), monitorExited);
    if (initPid === undefined) {
      await monitorExited;
      const errors = runcLogErrors(await readFile(join(bundle, LOG_FILE), 'utf8').catch(() => ''));
      await this.deleteContainer(containerId);
      throw failure('launch task', `runc could not start the container: ${errors.at(-1) ?? 'runc exited without starting it and logged no error'}`, {
        code: 'failed_precondition',
        fix: 'see `nomad alloc logs -stderr` and the plugin log for runc\'s messages',
      });
    }
    return new RuncTask(pid, processStartTime(pid) ?? 0, initPid, processStartTime(initPid) ?? 0, new Date(), exited, () => this.deleteContainer(containerId), { runcPath, runcRoot, bundle, containerId });
  }

  /** A task launched by an earlier plugin process: the monitor's exit.json holds its exit code. */
  async recover(record: RecoveryRecord): Promise<LaunchedTask> {
    const recorded = () => readExitCode(record.stateDir);
    if (!sameProcess(record.pid, record.pidStartTime) && (await recorded()) === undefined) {
      throw failure('recover task', `its runc monitor ${record.pid} is gone and recorded no exit status in ${join(record.stateDir, EXIT_FILE)}`, {
        code: 'not_found',
        fix: 'none needed: Nomad starts the task again',
      });
    }
    const exited = watchDetachedExit(record.pid, record.pidStartTime, recorded).then((code) => exitStatusOf(code, null));
    const { runcPath, runcRoot } = this.options;
    return new RuncTask(record.pid, record.pidStartTime, record.initPid, record.initStartTime, record.startedAt, exited, () => this.deleteContainer(record.key), {
      runcPath,
      runcRoot,
      bundle: record.stateDir,
      containerId: record.key,
    });
  }

  forget(key: string): Promise<void> {
    return this.deleteContainer(key);
  }

  /** `runc delete --force` when runc's state of the container is still there (--keep, or its monitor was killed). */
  private async deleteContainer(containerId: string): Promise<void> {
    if ((await entryKind(join(this.options.runcRoot, containerId))) === undefined) return;
    await runCommand(this.options.runcPath, ['--root', this.options.runcRoot, 'delete', '--force', containerId], { timeoutMs: 30_000, env: { PATH: HOST_PATH }, cleanEnv: true }).catch(() => undefined);
  }
}

async function readExitCode(bundle: string): Promise<number | undefined> {
  try {
    return parseExitFile(await readFile(join(bundle, EXIT_FILE), 'utf8'));
  } catch {
    return undefined;
  }
}

async function readPid(bundle: string): Promise<number | undefined> {
  try {
    return parsePidFile(await readFile(join(bundle, PID_FILE), 'utf8'));
  } catch {
    return undefined;
  }
}


/**
 * runc exits with the container init's status; tini passes on the command's, 128+N when the
 * command died of signal N (and runc reports 128+9 when tini itself was SIGKILLed).
 */
export function exitStatusOf(recorded: number | undefined, monitorCode: number | null): ExitStatus {
  const exitCode = recorded ?? monitorCode ?? 137;
  return { exitCode, signal: exitCode > 128 && exitCode < 128 + 65 ? exitCode - 128 : 0, oomKilled: false };
}

/** What `runc exec` needs to find the task's container. */
interface RuncContainer {
  readonly runcPath: string;
  readonly runcRoot: string;
  readonly bundle: string;
  readonly containerId: string;
}

class RuncTask implements LaunchedTask {
  constructor(
    readonly pid: number,
    readonly pidStartTime: number,
    readonly initPid: number,
    readonly initStartTime: number,
    readonly startedAt: Date,
    private readonly monitorExited: Promise<ExitStatus>,
    private readonly cleanup: () => Promise<void>,
    private readonly container: RuncContainer,
  ) {}

  get exited(): Promise<ExitStatus> {
    return this.monitorExited;
  }

  /** tini (the container's init) forwards the signal to the command's process group. */
  signal(signal: NodeJS.Signals): boolean {
    return sameProcess(this.initPid, this.initStartTime) && signalProcess(this.initPid, signal);
  }

  stop(signal: NodeJS.Signals, timeoutMs: number): Promise<ExitStatus> {
    return signalThenKill(() => this.signal(signal), () => this.killAll(), this.exited, timeoutMs);
  }

  async kill(): Promise<ExitStatus> {
    this.killAll();
    const status = await this.exited;
    await this.cleanup();
    return status;
  }

  /** `runc run --keep` leaves the container's record (and cgroup) for the driver to read: delete it. */
  async dispose(): Promise<void> {
    await this.cleanup();
  }

  /**
   * `runc exec` with the process in a file of the bundle (runtime/runc/exec.ts): runc joins
   * the container's namespaces and cgroup and applies its seccomp filter itself.
   */
  async execCommand(spec: ExecSpec): Promise<HostCommand> {
    const { runcPath, runcRoot, bundle, containerId } = this.container;
    const processFile = join(bundle, `exec-${randomBytes(6).toString('hex')}.json`);
    await writeTextFile(processFile, `${JSON.stringify(renderExecProcess(spec))}\n`, 0o600);
    return {
      file: runcPath,
      args: execArgs(runcRoot, processFile, containerId),
      env: { PATH: HOST_PATH },
      cleanup: () => removeFile(processFile),
    };
  }

  /** SIGKILL of the container's init ends its pid namespace, so every task process dies with it. */
  private killAll(): void {
    if (sameProcess(this.initPid, this.initStartTime)) signalProcess(this.initPid, 'SIGKILL');
  }
}
