/**
 * Shared, per-closure resources and who holds them. A store view (`state_dir/views/<key>`) and
 * a generated `/etc` dir (`state_dir/etc/<key>`) serve every task of the same closure (or the
 * same user, hostname and DNS). Each is held by every task that needs it from the moment its
 * StartTask (or RecoverTask) first needs it, through the time it runs, until DestroyTask or the
 * failed start's cleanup lets go; only the last holder's release removes it.
 *
 * Every operation on one key — acquire (which makes or finds the resource), release (which
 * removes it when no holder is left) and the orphan sweep's removal of an unheld key — runs
 * under that key's lock, one after the other. So an acquire racing a removal either runs
 * first (and the removal sees a holder and keeps the resource) or runs after it (and makes
 * the resource again); a removal never runs while a start is between making a resource and
 * binding it. Holders are identified (by Nomad task id), so a repeated release is a no-op.
 *
 * What is not shared, and why it needs no entry here: GC roots (one per task, keyed by the
 * task: nix/gc-roots.ts), closure-cache entries (never removed by the driver; a lookup only
 * trusts an entry whose paths are still in the store: nix/closure-cache.ts), and the driver's
 * parent cgroup `nomad-driver-nix/` (created on demand and never removed:
 * cgroup/task-cgroup.ts removes only a task's own directories).
 */

/** The kinds of shared resource: directory names below state_dir. */
export type SharedKind = 'views' | 'etc';

interface Entry {
  readonly holders: Set<string>;
  /** Settles when the last queued operation on this key has finished. */
  tail: Promise<void>;
  /** Operations queued or running on this key. */
  queued: number;
}

export class SharedResources {
  readonly #entries = new Map<string, Entry>();

  /**
   * `holder` holds `kind`/`key` from now on; `create` (which must make the resource or find it
   * made, e.g. ensureStoreView) runs under the key's lock. When `create` fails, a holder that
   * did not hold the key before does not hold it after, and the error is rethrown.
   */
  acquire<T>(kind: SharedKind, key: string, holder: string, create: () => Promise<T>): Promise<T> {
    return this.#locked(kind, key, async (entry) => {
      const had = entry.holders.has(holder);
      entry.holders.add(holder);
      try {
        return await create();
      } catch (error) {
        if (!had) entry.holders.delete(holder);
        throw error;
      }
    });
  }

  /**
   * `holder` lets go of `kind`/`key`; when it was the last holder, `remove` runs under the
   * key's lock. Resolves true when `remove` ran. A holder that does not hold the key changes
   * nothing (a repeated release, or one after a failed acquire).
   */
  release(kind: SharedKind, key: string, holder: string, remove: () => Promise<void>): Promise<boolean> {
    return this.#locked(kind, key, async (entry) => {
      if (!entry.holders.delete(holder) || entry.holders.size > 0) return false;
      await remove();
      return true;
    });
  }

  /** The orphan sweep: runs `remove` under the key's lock unless a holder holds it; true when it ran. */
  removeUnheld(kind: SharedKind, key: string, remove: () => Promise<void>): Promise<boolean> {
    return this.#locked(kind, key, async (entry) => {
      if (entry.holders.size > 0) return false;
      await remove();
      return true;
    });
  }

  /** The holders of `kind`/`key` now, sorted (for logs and tests). */
  holders(kind: SharedKind, key: string): string[] {
    return [...(this.#entries.get(id(kind, key))?.holders ?? [])].sort();
  }

  async #locked<T>(kind: SharedKind, key: string, operation: (entry: Entry) => Promise<T>): Promise<T> {
    const name = id(kind, key);
    let entry = this.#entries.get(name);
    if (entry === undefined) {
      entry = { holders: new Set(), tail: Promise.resolve(), queued: 0 };
      this.#entries.set(name, entry);
    }
    const current = entry;
    current.queued += 1;
    const previous = current.tail;
    let done!: () => void;
    current.tail = new Promise<void>((resolve) => (done = resolve));
    await previous;
    try {
      return await operation(current);
    } finally {
      current.queued -= 1;
      if (current.queued === 0 && current.holders.size === 0) this.#entries.delete(name);
      done();
    }
  }
}

const id = (kind: SharedKind, key: string) => `${kind}/${key}`;
