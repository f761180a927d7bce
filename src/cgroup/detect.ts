/**
 * Finds out which cgroup version this host runs and whether the controllers the driver needs
 * are there. Reads the mount table and, on v2, the root's cgroup.controllers; `root` and
 * `mountinfoPath` can point at a fake tree in tests.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { classifyCgroups, missingControllers, parseMountinfo } from './mountinfo.js';

export interface CgroupFacts {
  /** `v1` (legacy or hybrid) or `v2` (unified); undefined when neither is usable. */
  readonly version: 'v1' | 'v2' | undefined;
  readonly controllers: readonly string[];
  /** Why cgroups cannot be used, with the fix; undefined when they can. */
  readonly problem: string | undefined;
}

export async function detectCgroups(options: { root?: string; mountinfoPath?: string } = {}): Promise<CgroupFacts> {
  const root = options.root ?? '/sys/fs/cgroup';
  let mountinfo: string;
  try {
    mountinfo = await readFile(options.mountinfoPath ?? '/proc/self/mountinfo', 'utf8');
  } catch (error) {
    return { version: undefined, controllers: [], problem: `cannot read the mount table: ${(error as Error).message}` };
  }
  const layout = classifyCgroups(parseMountinfo(mountinfo), root);
  if (layout.mode === 'none') {
    return { version: undefined, controllers: [], problem: `no cgroup hierarchy found (${layout.reason}); mount cgroup2 at ${root}` };
  }
  let controllers: readonly string[];
  if (layout.mode === 'v2') {
    try {
      controllers = (await readFile(join(root, 'cgroup.controllers'), 'utf8'))
        .trim()
        .split(/\s+/)
        .filter((c) => c !== '');
    } catch (error) {
      return { version: 'v2', controllers: [], problem: `cannot read ${join(root, 'cgroup.controllers')}: ${(error as Error).message}` };
    }
  } else {
    controllers = layout.controllers;
  }
  const missing = missingControllers(controllers);
  const problem =
    missing.length === 0
      ? undefined
      : `cgroups ${layout.mode} controllers ${missing.join(', ')} are not available at ${root}; enable them (kernel/boot options or systemd delegation)`;
  return { version: layout.mode, controllers, problem };
}
