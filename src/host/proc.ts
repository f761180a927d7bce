/** Process facts from /proc: liveness, start time (guards against pid reuse), children. */
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';

/** Fields of /proc/<pid>/stat after the command name. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** True when `pid` exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  const fields = statFields(pid);
  return fields !== undefined && fields[0] !== 'Z' && fields[0] !== 'X';
}

/** Start time of `pid` in clock ticks since boot (field 22), or undefined when it is gone. */
export function processStartTime(pid: number): number | undefined {
  const value = statFields(pid)?.[19];
  return value === undefined ? undefined : Number(value);
}

/** Process group of `pid` (field 5), or undefined when it is gone. */
export function processGroupOf(pid: number): number | undefined {
  const value = statFields(pid)?.[2];
  return value === undefined ? undefined : Number(value);
}

/**
 * Pids whose parent is `ppid` (children of any of its threads), [] when it is gone. Reads
 * the children file of every thread under /proc/<pid>/task, or scans /proc on kernels
 * without CONFIG_PROC_CHILDREN.
 */
export function childPids(ppid: number): number[] {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${ppid}/task`);
  } catch {
    return [];
  }
  try {
    return threads.flatMap((tid) => {
      const text = readFileSync(`/proc/${ppid}/task/${tid}/children`, 'utf8').trim();
      return text === '' ? [] : text.split(/\s+/).map(Number);
    });
  } catch {
    // no children files: scan
  }
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if (Number(statFields(Number(entry))?.[1]) === ppid) pids.push(Number(entry));
  }
  return pids;
}

/** Sends `signal` to `pid`; false when the process is gone. */
export function signalProcess(pid: number, signal: NodeJS.Signals | number): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * `KEY=value` entries of a /proc/<pid>/environ block (NUL-separated), as a record. An entry
 * without `=` or with an empty name is skipped; a later duplicate wins, as getenv() sees it.
 * Pure.
 */
export function parseEnviron(block: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of block.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** The environment `pid` was started with (root may read anyone's), or undefined when it is gone. */
export function readEnviron(pid: number): Record<string, string> | undefined {
  try {
    return parseEnviron(readFileSync(`/proc/${pid}/environ`, 'latin1'));
  } catch {
    return undefined;
  }
}

/**
 * The child of `ppid` that started first: the command under a sandbox init (bwrap's or
 * tini), which starts it before anything else and keeps orphans that reparent to it later.
 */
export function firstChild(ppid: number): number | undefined {
  let first: { pid: number; start: number } | undefined;
  for (const pid of childPids(ppid)) {
    const start = processStartTime(pid);
    if (start === undefined) continue;
    if (first === undefined || start < first.start || (start === first.start && pid < first.pid)) first = { pid, start };
  }
  return first?.pid;
}

/** `pid` and every process below it, parents before children ([] when it is gone). */
export function processTree(pid: number): number[] {
  const tree: number[] = [];
  const queue = [pid];
  const seen = new Set<number>();
  while (queue.length > 0) {
    const next = queue.shift() as number;
    if (seen.has(next) || !isRunning(next)) continue;
    seen.add(next);
    tree.push(next);
    queue.push(...childPids(next));
  }
  return tree;
}

/**
 * SIGKILLs `pid`'s process group and every process below `pid`, the tree read before any
 * of it dies (a killed parent's children move to another parent and could not be found).
 * Repeated while something is left, for processes forked during the walk.
 */
export function killProcessTree(pid: number): void {
  for (let pass = 0; pass < 5; pass += 1) {
    const tree = processTree(pid);
    signalProcess(-pid, 'SIGKILL');
    if (tree.length === 0) return;
    for (const member of tree) signalProcess(member, 'SIGKILL');
  }
}

/** The host path of `path` inside the root of process `pid` (its mount namespace and root). */
export function pathInRootOf(pid: number, path: string): string {
  return `/proc/${pid}/root${path.startsWith('/') ? '' : '/'}${path}`;
}

/** The executable of `pid` (/proc/<pid>/exe, " (deleted)" removed), or undefined when it is gone or unreadable. */
export function executableOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '');
  } catch {
    return undefined;
  }
}

/** What file descriptor `fd` of `pid` refers to (/proc/<pid>/fd/<fd>), or undefined. */
export function fdTarget(pid: number, fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** The arguments `pid` was started with (/proc/<pid>/cmdline), or undefined when it is gone. */
export function commandLineOf(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return text === '' ? [] : text.replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

/** /proc/<pid>/cgroup as text, or undefined when it is gone. */
export function cgroupFileOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return undefined;
  }
}

/** The real uid of `pid` (/proc/<pid>/status `Uid:`), or undefined when it is gone. */
export function realUidOf(pid: number): number | undefined {
  try {
    const match = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

/**
 * Raises /proc/<pid>/oom_score_adj to `floor` when it is below (raising needs no privilege;
 * lowering needs CAP_SYS_RESOURCE, which a container's root may lack); a higher value, set on
 * purpose, is kept. Throws with the errno when the process is gone.
 */
export function raiseOomScoreAdj(pid: number, floor: number): void {
  const file = `/proc/${pid}/oom_score_adj`;
  if (Number(readFileSync(file, 'utf8').trim()) < floor) writeFileSync(file, String(floor));
}
