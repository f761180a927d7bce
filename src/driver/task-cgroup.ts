/**
 * The driver owns each task's cgroup, on both runtimes: it decides where the cgroup is
 * (Nomad's, else its own), creates it, writes every limit, reads its OOM kills and stats, and
 * kills what is left in it and removes it when the task is destroyed, swept or its start
 * fails. A runtime only puts the task in it before the command starts (runtime/runtime.ts
 * CgroupPlacement): bwrap moves the sandbox's init in while it waits on its block fd; runc is
 * given the cgroup as `cgroupsPath`, joins it (runc 1.1.5 makes a missing directory and writes
 * only the `linux.resources` fields that are set) and is given no limit to write.
 *
 * The one value runc still writes: on cgroups v1 runc joins `<hierarchy>/<path>` in every
 * hierarchy, cpuset included, and cannot join Nomad's cpuset partition
 * (`cpuset/<parent>/reserve/<alloc>.<task>`); it makes `cpuset/<path>` itself, so a task with
 * reserved cores gets them there from runc (CgroupPlacement.cpusetCpusAtPath).
 */
import type { CgroupVersion, TaskLimits } from '../cgroup/limits.js';
import { nomadTaskLimits } from '../cgroup/limits.js';
import { processInCgroup } from '../cgroup/membership.js';
import { DRIVER_CGROUP_PARENT, nomadTaskCgroup, taskCgroupLocation, type TaskCgroupLocation } from '../cgroup/placement.js';
import { createTaskCgroup, type TaskCgroup } from '../cgroup/task-cgroup.js';
import type { CgroupPlacement, ExitStatus } from '../runtime/runtime.js';
import { oomKilledAtExit } from './oom-watch.js';
import type { TaskRequest } from './task.js';

/** The limits Nomad allocated (cpu, cores, memory, memory_max) plus the pids limit. */
export function taskLimits(request: TaskRequest, pidsLimit: number): TaskLimits {
  const pids = pidsLimit > 0 ? { pidsLimit } : {};
  const r = request.resources;
  if (r === undefined) return pids;
  const limits = nomadTaskLimits({ cpuShares: r.cpuShares, memoryMb: r.memoryMb, memoryMaxMb: r.memoryMaxMb, cpusetCpus: r.cpusetCpus, ...pids });
  if (r.memoryMb > 0) return limits;
  // no memory allocated (never from a scheduler; driver-level tests): no memory limit
  const { memoryLimitBytes: _hard, memorySoftLimitBytes: _soft, ...rest } = limits;
  return rest;
}

/** Nomad's cgroup for the task when it made one (CpusetCgroupPath), else the driver's own. */
export function taskCgroupPlace(request: TaskRequest, key: string, version: CgroupVersion): TaskCgroupLocation {
  const given = request.resources?.cpusetCgroupPath ?? '';
  if (given !== '') return nomadTaskCgroup({ version, allocId: request.allocId, taskName: request.name, cpusetCgroupPath: given });
  return taskCgroupLocation({ version, path: `${DRIVER_CGROUP_PARENT}/${key}` });
}

/**
 * What a runtime gets to put the task in `cgroup`: its path for runc's `cgroupsPath`, a join
 * for bwrap, a membership check, and the reserved cores runc must write itself on v1 (see the
 * module comment). Pure but for the callbacks.
 */
export function cgroupPlacement(cgroup: TaskCgroup, limits: TaskLimits): CgroupPlacement {
  const { location } = cgroup;
  // v1: runc's cpuset directory is cpuset/<path>; the driver's is elsewhere when cpusetPath is set
  const runcOwnCpuset = location.version === 'v1' && location.cpusetPath !== undefined && location.sharedCpuset !== true;
  return {
    path: `/${location.path}`,
    join: (pid) => cgroup.addProcess(pid),
    readyJoin: (pid) => cgroup.readyJoin(pid),
    contains: (pid) => processInCgroup(pid, location),
    ...(runcOwnCpuset && limits.cpusetCpus !== undefined ? { cpusetCpusAtPath: limits.cpusetCpus } : {}),
  };
}

/** A task's cgroup, made and limited, with its OOM kill count before the task starts. */
export interface PreparedCgroup {
  readonly cgroup: TaskCgroup;
  /** The kernel's OOM kill counter now (Nomad reuses a task's cgroup across restarts). */
  readonly oomKillsBefore: number;
  readonly placement: CgroupPlacement;
}

/**
 * Creates the task's cgroup (or completes Nomad's), writes `limits`, and reads its OOM kill
 * counter. `onCreated` is called as soon as the cgroup exists, so a failed limit write is undone
 * too (the start's cleanup stack). Throws the cgroup module's DriverErrors.
 */
export async function prepareTaskCgroup(location: TaskCgroupLocation, limits: TaskLimits, onCreated: (cgroup: TaskCgroup) => void): Promise<PreparedCgroup> {
  const cgroup = await createTaskCgroup(location);
  onCreated(cgroup);
  await cgroup.applyLimits(limits);
  const oomKillsBefore = (await cgroup.readOomKills()) ?? 0;
  return { cgroup, oomKillsBefore, placement: cgroupPlacement(cgroup, limits) };
}

/** Kills whatever is left in a task's cgroup and removes it. */
export async function releaseCgroup(cgroup: TaskCgroup): Promise<void> {
  // runc's `delete` may have removed the directories already: only live processes make a
  // failed kill an error
  await cgroup.kill().catch(async (error: unknown) => {
    if ((await cgroup.processes().catch(() => [])).length > 0) throw error;
  });
  await cgroup.remove({ timeoutMs: 10_000 });
}

/**
 * The runtime's exit status with `oomKilled` set when the task's main process died of the
 * kernel's SIGKILL while the cgroup's OOM kill counter grew past its value at start
 * (`oomKillsBefore`); a kill of another process of the task is a task event instead
 * (driver/oom-watch.ts).
 */
export async function withOomKills(status: ExitStatus, cgroup: TaskCgroup | undefined, oomKillsBefore: number): Promise<ExitStatus> {
  const oomKills = await cgroup?.readOomKills().catch(() => undefined);
  return { ...status, oomKilled: oomKilledAtExit(status, oomKillsBefore, oomKills) };
}
