/**
 * What the driver still holds for an allocation after its tasks ended: state dirs, GC roots,
 * processes, runc state, cgroups and mounts in the host's namespace.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskAgent } from './task-agent.js';

export function leftovers(taskAgent: Pick<TaskAgent, 'stateDir' | 'gcRootsDir'>, allocId: string): string[] {
  const { stateDir, gcRootsDir } = taskAgent;
  const tasksDir = join(stateDir, 'tasks');
  const mine = (names: string[]) => names.filter((n) => n.startsWith(allocId));
  const processes = readdirSync('/proc').filter((pid) => {
    if (!/^\d+$/.test(pid)) return false;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(allocId);
    } catch {
      return false;
    }
  });
  const runcStates = existsSync(join(stateDir, 'runc')) ? mine(readdirSync(join(stateDir, 'runc'))) : [];
  // the driver's own cgroups, and the pids cgroup it adds to Nomad's task cgroup (v1)
  const cgroups = existsSync('/sys/fs/cgroup')
    ? readdirSync('/sys/fs/cgroup').flatMap((controller) => {
        const parents = [
          join('/sys/fs/cgroup', controller, 'nomad-driver-nix'),
          ...(controller === 'pids' ? [join('/sys/fs/cgroup', controller, 'nomad')] : []),
        ];
        return parents.flatMap((parent) => (existsSync(parent) ? mine(readdirSync(parent)).map((n) => join(parent, n)) : []));
      })
    : [];
  // the driver never mounts anything in the host's namespace (runtimes mount inside the task's)
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(stateDir) || l.includes('/nix/store '));
  return [
    ...mounts.map((m) => `mount ${m}`),
    ...mine(existsSync(tasksDir) ? readdirSync(tasksDir) : []).map((n) => `state ${n}`),
    ...mine(readdirSync(gcRootsDir)).map((n) => `gc root ${n}`),
    ...processes.map((pid) => `process ${pid}`),
    ...runcStates.map((n) => `runc state ${n}`),
    ...cgroups.map((c) => `cgroup ${c}`),
  ];
}

/** Waits (up to 30 s) until nothing of the allocation is left; resolves with what is left (nothing). */
export async function waitForNoLeftovers(taskAgent: TaskAgent, allocId: string): Promise<string[]> {
  await taskAgent.agent
    .waitFor(`the driver to release everything of alloc ${allocId}`, async () => (leftovers(taskAgent, allocId).length === 0 ? true : undefined), 30_000)
    .catch(() => undefined);
  return leftovers(taskAgent, allocId);
}

/**
 * SIGKILLs every process whose environment names one of `allocIds` (a task of an allocation
 * Nomad failed to stop before its agent went away; tasks outlive agents by design) and returns
 * their pids, so a test run leaves no task behind even when a stop went wrong.
 */
export function killTasksOf(allocIds: ReadonlySet<string>): number[] {
  if (allocIds.size === 0) return [];
  const killed: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      const alloc = environ.find((v) => v.startsWith('NOMAD_ALLOC_ID='))?.slice('NOMAD_ALLOC_ID='.length);
      if (alloc !== undefined && allocIds.has(alloc)) {
        process.kill(Number(entry), 'SIGKILL');
        killed.push(Number(entry));
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return killed;
}
