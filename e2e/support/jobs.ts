/**
 * Running jobs on the e2e agent the way an operator does: job files through the `nomad` CLI,
 * state read back through the HTTP API and `nomad alloc` commands.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nomadBinary, type NomadAgent } from './nomad-agent.js';

export interface CliResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `nomad <args>` against the agent. A CLI still running after `timeoutMs` gets SIGQUIT, on
 * which a Go program prints every goroutine's stack to stderr: a hang says where it hung (two
 * loaded CI runs saw `nomad job run -detach` hang for 120 s after printing its evaluation id).
 */
export function nomad(agent: NomadAgent, args: readonly string[], timeoutMs = 120_000): CliResult {
  const result = spawnSync(nomadBinary(), [...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGQUIT',
    env: { ...process.env, NOMAD_ADDR: agent.address },
  });
  return { status: result.status ?? -1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** Submits `hcl` with `nomad job run -detach` and returns the job's id. */
export function runJob(agent: NomadAgent, hcl: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'nix-e2e-job-'));
  const file = join(dir, 'job.nomad.hcl');
  writeFileSync(file, hcl);
  const result = nomad(agent, ['job', 'run', '-detach', file]);
  if (result.status !== 0) throw new Error(`nomad job run failed (${result.status}): ${result.stderr}${result.stdout}\nagent log:\n${agent.logTail()}`);
  const id = /^job\s+"([^"]+)"/m.exec(hcl)?.[1];
  if (id === undefined) throw new Error('job file has no job "name" block');
  return id;
}

export interface TaskState {
  readonly State: string;
  readonly Failed: boolean;
  readonly Events: {
    readonly Type: string;
    readonly DisplayMessage: string;
    readonly Details?: Record<string, string>;
    readonly ExitCode?: number;
    readonly Signal?: number;
  }[];
}

export interface Allocation {
  readonly ID: string;
  readonly ClientStatus: string;
  readonly TaskStates: Record<string, TaskState> | null;
  readonly AllocatedResources?: { Shared?: { Ports?: { Label: string; Value: number; HostIP: string }[] } };
}

/** The job's newest allocation once `predicate` holds for it. */
export function waitForAlloc(
  agent: NomadAgent,
  jobId: string,
  predicate: (alloc: Allocation) => boolean,
  what: string,
  timeoutMs = 120_000,
): Promise<Allocation> {
  return waitForAllocation(
    agent,
    `${what} (job ${jobId})`,
    async () => {
      const stubs = await agent.api<{ ID: string; CreateIndex: number }[]>(`/v1/job/${jobId}/allocations`);
      const newest = [...stubs].sort((a, b) => b.CreateIndex - a.CreateIndex)[0];
      return newest === undefined ? undefined : agent.api<Allocation>(`/v1/allocation/${newest.ID}`);
    },
    predicate,
    timeoutMs,
  );
}

/** One allocation by id once `predicate` holds (`nomad alloc stop` replaces a service's alloc). */
export function waitForAllocId(
  agent: NomadAgent,
  allocId: string,
  predicate: (alloc: Allocation) => boolean,
  what: string,
  timeoutMs = 120_000,
): Promise<Allocation> {
  return waitForAllocation(agent, `${what} (alloc ${allocId})`, () => agent.api<Allocation>(`/v1/allocation/${allocId}`), predicate, timeoutMs);
}

/**
 * Polls `read` until `predicate` holds for the allocation it returns. A timeout's error says
 * what the last allocation seen looked like: its status and every task's events.
 */
async function waitForAllocation(
  agent: NomadAgent,
  what: string,
  read: () => Promise<Allocation | undefined>,
  predicate: (alloc: Allocation) => boolean,
  timeoutMs: number,
): Promise<Allocation> {
  let last: Allocation | undefined;
  try {
    return await agent.waitFor(
      what,
      async () => {
        const alloc = await read();
        if (alloc === undefined) return undefined;
        last = alloc;
        return predicate(alloc) ? alloc : undefined;
      },
      timeoutMs,
    );
  } catch (error) {
    if (!(error instanceof Error) || last === undefined) throw error;
    const alloc = last;
    const tasks = Object.keys(alloc.TaskStates ?? {}).map((task) => `task ${task} (${taskState(alloc, task)?.State}):\n${eventMessages(alloc, task)}`);
    error.message = `${error.message}\nlast allocation ${alloc.ID}: ${alloc.ClientStatus}\n${tasks.join('\n')}`;
    throw error;
  }
}

export const taskState = (alloc: Allocation, task: string): TaskState | undefined => alloc.TaskStates?.[task];

export function isRunning(alloc: Allocation, task: string): boolean {
  return taskState(alloc, task)?.State === 'running';
}

export function isDead(alloc: Allocation, task: string): boolean {
  return taskState(alloc, task)?.State === 'dead';
}

/** Every event message of a task, one per line, as `nomad alloc status` lists them. */
export function eventMessages(alloc: Allocation, task: string): string {
  return (taskState(alloc, task)?.Events ?? []).map((e) => `${e.Type}: ${e.DisplayMessage}`).join('\n');
}

/** `nomad alloc logs [-stderr] <alloc> <task>` output. */
export function allocLogs(agent: NomadAgent, allocId: string, task: string, stderr = false): string {
  const result = nomad(agent, ['alloc', 'logs', ...(stderr ? ['-stderr'] : []), allocId, task]);
  return result.stdout;
}

/** Stops and purges a job; waits until its allocations are terminal. */
export async function purgeJob(agent: NomadAgent, jobId: string): Promise<void> {
  nomad(agent, ['job', 'stop', '-purge', '-detach', jobId]);
}
