/**
 * Runs tasks with runc, from the same root plan as bubblewrap: the plan is rendered to an OCI
 * config (runc/oci-config.ts), the task's state dir is the OCI bundle, and a small monitor
 * (runc/monitor.ts) runs `runc run` in the foreground so the exit code is on disk even when
 * the plugin is not running. runc starts as root and switches to the task user itself.
 */
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { failure } from '../../errors.js';
import { runCommand } from '../../host/exec.js';
import { createDirectory, createSymlink, entryKind, removeFile, writeTextFile } from '../../host/fs.js';
import { commandLineOf, signalProcess } from '../../host/proc.js';
import { initIsOurs, killMonitor, LAUNCH_REPORT_TIMEOUT_MS, resolvedPath, waitForValue, type TaskProcesses } from '../detached-exit.js';
import { DetachedTask, exitStatusFromCode, killOwned, launchedPids, readRecord, recoveredExit, spawnMonitor } from '../detached-task.js';
import { RUNC_ENV } from './runc-env.js';
import { logSinkOpeners, openAll, readFile } from '../../host/task-files.js';
import type { ExecSpec, ExitStatus, HostCommand, LaunchRequest, LaunchedTask, RecoveryRecord, Runtime } from '../runtime.js';
import { execArgs, renderExecProcess } from './exec.js';
import { CONFIG_FILE, EXIT_FILE, LOG_FILE, PID_FILE, ROOTFS_DIR, monitorArgs, parseExitFile, parsePidFile, runcLogErrors } from './monitor.js';
import { renderOciConfig } from './oci-config.js';
import { missingInterpreter } from '../interpreter.js';

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
    const mark = request.mark ?? (() => undefined);
    // tini's failed exec of the command is only its exit 127 and a line in the task's stderr,
    // which cannot be told from the command's own 127: the one cause the closure decides is
    // checked before the container starts
    // (read while the bundle is written: a failed check leaves only files of the task's state
    // dir, which the driver removes)
    const [command = ''] = request.process.argv;
    const checked = missingInterpreter(request.plan, command);
    const bundle = request.stateDir;
    const containerId = request.key;
    const { config, rootfsEntries } = renderOciConfig(request.plan, request.process, {
      initPath,
      // runc joins the cgroup the driver made and limited before the container's init
      // starts, and writes no limit there (driver/task-cgroup.ts): only reserved cores on v1,
      // into the cpuset directory runc makes itself
      cgroupsPath: request.cgroup.path,
      arch: process.arch,
      ...(request.networkNamespace === undefined ? {} : { networkNamespace: request.networkNamespace }),
      ...(request.cgroup.cpusetCpusAtPath === undefined ? {} : { limits: { cpusetCpus: request.cgroup.cpusetCpusAtPath } }),
    });
    const rootfs = join(bundle, ROOTFS_DIR);
    const written = (async () => {
      await createDirectory(rootfs, 0o755);
      for (const entry of rootfsEntries) {
        if (entry.kind === 'dir') await createDirectory(join(rootfs, entry.path), 0o755);
        else await createSymlink(entry.linkTarget, join(rootfs, entry.path));
      }
      await writeTextFile(join(bundle, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`, 0o600);
    })();
    const [interpreter] = await Promise.all([checked, written.catch(() => undefined)]);
    mark('launch_interpreter');
    if (interpreter !== undefined) {
      throw failure(
        'launch task',
        `the command ${command} cannot be executed in the container: its "#!" interpreter ${interpreter} is not in the task's closure`,
        {
          code: 'failed_precondition',
          fix: `make ${interpreter} part of the closure (e.g. build the script with its interpreter as a dependency), or point command at a program`,
        },
      );
    }
    await written;
    mark('launch_bundle');

    // all or none: a failed open closes the other (openAll)
    const [stdout, stderr] = (await openAll(logSinkOpeners(request.stdoutPath, request.stderrPath))) as [FileHandle, FileHandle];
    const { pid, exited: monitorExited } = await spawnMonitor(
      {
        program: shellPath,
        args: monitorArgs(runcPath, runcRoot, bundle, containerId),
        stdio: ['ignore', stdout.fd, stderr.fd],
        env: RUNC_ENV,
        missingFix: 'install a POSIX shell at /bin/sh on the client',
      },
      [stdout, stderr],
    );
    const exited = monitorExited.then(async ({ code }) => exitStatusOf(await readExitCode(bundle), code));
    mark('launch_spawned');

    // runc writes the container init's pid file once the container started
    let initPid: number | undefined;
    try {
      initPid = await waitForValue(bundle, () => readPid(bundle), monitorExited, {
        ms: LAUNCH_REPORT_TIMEOUT_MS,
        what: `runc (monitor pid ${pid}) neither wrote the container's pid file ${PID_FILE} nor exited`,
        fix: "check that runc works on the client and see the plugin log for runc's messages",
      });
    } catch (error) {
      await killMonitor(pid, monitorExited);
      await this.deleteContainer(containerId);
      throw error;
    }
    if (initPid === undefined) {
      await monitorExited;
      const errors = runcLogErrors(await readFile(join(bundle, LOG_FILE), 'utf8').catch(() => ''));
      await this.deleteContainer(containerId);
      throw failure('launch task', `runc could not start the container: ${errors.at(-1) ?? 'runc exited without starting it and logged no error'}`, {
        code: 'failed_precondition',
        fix: "see `nomad alloc logs -stderr` and the plugin log for runc's messages",
      });
    }
    mark('launch_pid');
    const processes = this.processes(launchedPids(pid, initPid), bundle, containerId, request.cgroup.contains);
    return new RuncTask(processes, new Date(), exited, () => this.deleteContainer(containerId), { runcPath, runcRoot, bundle, containerId });
  }

  /**
   * The task's processes as runc runs them: the monitor is this runtime's shell running the
   * monitor script for exactly this bundle and container id; tini (the init) is in the task's
   * cgroup.
   */
  private processes(
    pids: Pick<TaskProcesses, 'pid' | 'pidStartTime' | 'initPid' | 'initStartTime'>,
    bundle: string,
    containerId: string,
    inTaskCgroup: (pid: number) => boolean,
  ): TaskProcesses {
    const expected = monitorArgs(this.options.runcPath, this.options.runcRoot, bundle, containerId).slice(-2);
    return {
      ...pids,
      monitorExecutable: resolvedPath(this.options.shellPath),
      monitorMark: (pid) => {
        const argv = commandLineOf(pid);
        return argv !== undefined && argv.length >= 2 && argv.at(-2) === expected[0] && argv.at(-1) === expected[1];
      },
      inTaskCgroup,
    };
  }

  /**
   * A task launched by an earlier plugin process: the monitor's exit.json holds its exit code.
   * Its monitor counts as running only when it is provably the task's (TaskProcesses).
   */
  async recover(record: RecoveryRecord): Promise<LaunchedTask> {
    const processes = this.processes(record, record.stateDir, record.key, record.inTaskCgroup);
    const { exited } = await recoveredExit(
      processes,
      () => readExitCode(record.stateDir),
      `its runc monitor ${record.pid} is gone (or is not this task's monitor) and recorded no exit status in ${join(record.stateDir, EXIT_FILE)}`,
    );
    const { runcPath, runcRoot } = this.options;
    return new RuncTask(processes, record.startedAt, exited, () => this.deleteContainer(record.key), {
      runcPath,
      runcRoot,
      bundle: record.stateDir,
      containerId: record.key,
    });
  }

  /** SIGKILLs a forgotten task's init and monitor, each only when provably the task's own. */
  killOrphan(record: RecoveryRecord): void {
    killOwned(this.processes(record, record.stateDir, record.key, record.inTaskCgroup));
  }

  forget(key: string): Promise<void> {
    return this.deleteContainer(key);
  }

  /** `runc delete --force` when runc's state of the container is still there (--keep, or its monitor was killed). */
  private async deleteContainer(containerId: string): Promise<void> {
    if ((await entryKind(join(this.options.runcRoot, containerId))) === undefined) return;
    await runCommand(this.options.runcPath, ['--root', this.options.runcRoot, 'delete', '--force', containerId], {
      timeoutMs: 30_000,
      env: { ...RUNC_ENV },
      cleanEnv: true,
    }).catch(() => undefined);
  }
}

function readExitCode(bundle: string): Promise<number | undefined> {
  return readRecord(join(bundle, EXIT_FILE), parseExitFile);
}

function readPid(bundle: string): Promise<number | undefined> {
  return readRecord(join(bundle, PID_FILE), parsePidFile);
}

/**
 * runc exits with the container init's status; tini passes on the command's, 128+N when the
 * command died of signal N (and runc reports 128+9 when tini itself was SIGKILLed).
 */
export function exitStatusOf(recorded: number | undefined, monitorCode: number | null): ExitStatus {
  return exitStatusFromCode(recorded ?? monitorCode ?? 137);
}

/** What `runc exec` needs to find the task's container. */
interface RuncContainer {
  readonly runcPath: string;
  readonly runcRoot: string;
  readonly bundle: string;
  readonly containerId: string;
}

class RuncTask extends DetachedTask {
  constructor(
    processes: TaskProcesses,
    startedAt: Date,
    exited: Promise<ExitStatus>,
    private readonly cleanup: () => Promise<void>,
    private readonly container: RuncContainer,
  ) {
    super(processes, startedAt, exited);
  }

  /** tini (the container's init) forwards the signal to the command alone (no `-g`: see oci-config.ts). */
  signal(signal: NodeJS.Signals): boolean {
    return initIsOurs(this.processes) && signalProcess(this.initPid, signal);
  }

  /** `runc run --keep` leaves the container's record (and cgroup) for the driver to read: delete it. */
  override async dispose(): Promise<void> {
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
      env: { ...RUNC_ENV },
      cleanup: () => removeFile(processFile),
    };
  }
}
