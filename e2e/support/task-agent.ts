/**
 * An agent for running tasks: its own plugin state_dir and gc_roots_dir (so tests can check
 * that nothing of a task is left), no binary cache (closures are built locally from busybox),
 * healthy before tests start; `close()` stops every job first (tasks outlive agents by design).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hcl } from './job-hcl.js';
import { killTasksOf } from './leftovers.js';
import { NomadAgent, type AgentOptions } from './nomad-agent.js';

export interface TaskAgent {
  readonly agent: NomadAgent;
  readonly stateDir: string;
  readonly gcRootsDir: string;
  close(): Promise<void>;
}

export type RuntimeName = 'bwrap' | 'runc';

/** The runtimes every task scenario runs on (parameterised, not copied). */
export const RUNTIMES: readonly RuntimeName[] = ['bwrap', 'runc'];

/**
 * The directory every task agent lists in `allow_local_flakes`: tests write their `path:`
 * flakes below it (e2eFlakeDir). Nomad's allocation dirs are elsewhere (the agent's work dir).
 */
export const E2E_FLAKES_DIR = join(tmpdir(), 'nix-e2e-flakes');

/** A new directory for one test flake, below E2E_FLAKES_DIR (the caller removes it). */
export function e2eFlakeDir(): string {
  mkdirSync(E2E_FLAKES_DIR, { recursive: true, mode: 0o755 });
  return mkdtempSync(join(E2E_FLAKES_DIR, 'flake-'));
}

export async function startTaskAgent(
  name: string,
  options: Omit<AgentOptions, 'pluginConfig'> & {
    runtime?: RuntimeName;
    /** More lines inside the plugin's config block. */
    pluginConfig?: string;
    /** The plugin's substituters (default none: closures are built locally). */
    substituters?: readonly string[];
  } = {},
): Promise<TaskAgent> {
  const { runtime, pluginConfig, substituters = [], ...agentOptions } = options;
  const stateDir = mkdtempSync(`/var/lib/nix-e2e-${name}-`);
  const gcRootsDir = mkdtempSync(`/nix/var/nix/gcroots/nix-e2e-${name}-`);
  const agent = await NomadAgent.start({
    ...agentOptions,
    pluginConfig: [
      `    state_dir    = ${hcl(stateDir)}`,
      `    gc_roots_dir = ${hcl(gcRootsDir)}`,
      `    substituters = [${substituters.map(hcl).join(', ')}]`,
      `    allow_local_flakes = [${hcl(E2E_FLAKES_DIR)}]`,
      ...(runtime === undefined ? [] : [`    runtime      = ${hcl(runtime)}`]),
      ...(pluginConfig === undefined ? [] : [pluginConfig]),
    ].join('\n'),
  });
  await agent.nixDriver((d) => d.Healthy);
  return {
    agent,
    stateDir,
    gcRootsDir,
    async close() {
      const allocs = await agent.api<{ ID: string }[]>('/v1/allocations').catch(() => []);
      await agent.stopAllJobs();
      await agent.stop();
      agent.cleanup();
      const orphans = killTasksOf(new Set(allocs.map((a) => a.ID)));
      if (orphans.length > 0) process.stderr.write(`warning: killed ${orphans.length} task processes Nomad did not stop: ${orphans.join(' ')}\n`);
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(gcRootsDir, { recursive: true, force: true });
    },
  };
}
