/**
 * Remembers the realised closure of store-path requests, so a repeat start of a known closure
 * runs no Nix command at all (the warm-start path). A store path is immutable, so its closure
 * never changes; the cache is only trusted while the requested paths are still in the store
 * (a garbage collection may have removed them while no task held a GC root). Checking those
 * roots is enough: Nix keeps the closure of every valid path valid, so a path that is still
 * there still has all its requisites — and a check of 2000 paths would cost more than the
 * whole warm start.
 * Flake requests are never cached: the flake may have changed, only Nix can tell.
 * Entries live in memory and as JSON files under `<state_dir>/closures/`, so they survive a
 * plugin restart.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { allPathsExist, readJsonFile, writeJsonFileAtomic } from '../host/fs.js';
import type { RealiseRequest, Realised } from './realise.js';

export class ClosureCache {
  private readonly memory = new Map<string, Realised>();

  constructor(readonly directory: string) {}

  /** The cache key of a request, or undefined for requests that must not be cached. */
  static keyOf(request: RealiseRequest): string | undefined {
    if (request.storePath === undefined || request.storePath.endsWith('.drv')) return undefined;
    if (request.packages.some((p) => p.endsWith('.drv'))) return undefined;
    return createHash('sha256')
      .update(JSON.stringify([request.storePath, ...request.packages]))
      .digest('hex')
      .slice(0, 32);
  }

  /** The cached closure when it is known and still complete in the store. */
  async lookup(request: RealiseRequest): Promise<Realised | undefined> {
    const key = ClosureCache.keyOf(request);
    if (key === undefined) return undefined;
    const entry = this.memory.get(key) ?? (await readJsonFile<Realised>(join(this.directory, `${key}.json`)));
    if (entry === undefined || !isRealised(entry)) return undefined;
    if (!(await allPathsExist([entry.mainOutput, ...entry.packageOutputs]))) {
      this.memory.delete(key);
      return undefined;
    }
    this.memory.set(key, entry);
    return entry;
  }

  async remember(request: RealiseRequest, realised: Realised): Promise<void> {
    const key = ClosureCache.keyOf(request);
    if (key === undefined) return;
    this.memory.set(key, realised);
    // only a shortcut for the next plugin process: failing to write it never fails a start
    await writeJsonFileAtomic(join(this.directory, `${key}.json`), realised).catch(() => undefined);
  }
}

function isRealised(value: unknown): value is Realised {
  const v = value as Realised;
  return typeof v === 'object' && v !== null && typeof v.mainOutput === 'string' && Array.isArray(v.packageOutputs) && Array.isArray(v.closure);
}
