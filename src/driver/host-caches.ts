/**
 * What StartTask learns about the host once and reuses: the driver's directories made, the
 * directories task users can search, the closures of store paths, the cgroup version.
 */
import { join } from 'node:path';
import { detectCgroups } from '../cgroup/detect.js';
import type { CgroupVersion } from '../cgroup/limits.js';
import { failure } from '../errors.js';
import { ensureDirectory } from '../host/fs.js';
import { ClosureCache } from '../nix/closure-cache.js';

export class HostCaches {
  private dirsReady: Promise<void> | undefined;
  private dirsFor = '';
  /**
   * Directories found searchable by task users (start-task's reachability check); forgotten
   * every minute so a permission change is noticed.
   */
  private readonly searchableDirs = new Set<string>();
  private searchableClearedAt = Date.now();
  /** Closures of store paths, per state_dir (replaced when SetConfig changes it). */
  private closures: ClosureCache | undefined;
  private cgroupFacts: Promise<CgroupVersion> | undefined;

  /** `stateDir`, its views/, tasks/ and etc/: traversable (not readable) by unprivileged task users. */
  ensureDirs(stateDir: string): Promise<void> {
    if (this.dirsReady === undefined || this.dirsFor !== stateDir) {
      this.dirsFor = stateDir;
      this.dirsReady = (async () => {
        for (const dir of [stateDir, join(stateDir, 'views'), join(stateDir, 'tasks'), join(stateDir, 'etc')])
          await ensureDirectory(dir, 0o711, { exact: true });
      })();
      this.dirsReady.catch(() => (this.dirsReady = undefined));
    }
    return this.dirsReady;
  }

  searchable(): Set<string> {
    if (Date.now() - this.searchableClearedAt > 60_000) {
      this.searchableDirs.clear();
      this.searchableClearedAt = Date.now();
    }
    return this.searchableDirs;
  }

  closureCache(stateDir: string): ClosureCache {
    const dir = join(stateDir, 'closures');
    if (this.closures === undefined || this.closures.directory !== dir) this.closures = new ClosureCache(dir);
    return this.closures;
  }

  /** The host's cgroup version, detected once; no usable cgroups fails the start clearly. */
  cgroupVersion(): Promise<CgroupVersion> {
    this.cgroupFacts ??= detectCgroups().then((facts) => {
      if (facts.version === undefined || facts.problem !== undefined) {
        this.cgroupFacts = undefined;
        throw failure('start task', `no usable cgroups: ${facts.problem ?? 'unknown cgroup layout'}`, { code: 'failed_precondition' });
      }
      return facts.version;
    });
    return this.cgroupFacts;
  }
}
