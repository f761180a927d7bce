/** Process facts from /proc: liveness, start time (guards against pid reuse), children. */
import { readFileSync, readdirSync } from 'node:fs';

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
