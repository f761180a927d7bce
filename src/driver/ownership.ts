/**
 * Which entries of state_dir and gc_roots_dir are provably this driver's, and whose node's
 * (README "Driver state and the orphan sweep"). The orphan sweep removes only what carries an
 * owner mark of the plugin instance's own Nomad node; everything else (another client's tasks
 * on a shared state_dir, entries of an older plugin version, files of anyone else) is left.
 *
 * - a task's state dir `<state_dir>/tasks/<key>/` and GC root entry `<gc_roots_dir>/<key>/`:
 *   an `owner.json` inside, written before anything else of the task is created there;
 * - shared store views and /etc dirs are bound whole into tasks, so nothing may be added to
 *   them: one file per node using the entry, `<state_dir>/owners/<views|etc>/<key>/<node>.json`.
 *   An entry is removed only when no node's file is left.
 */
import { join } from 'node:path';
import { failure, INTERNAL_FIX, quote } from '../errors.js';
import { listEntries, readJsonFile, removeFile, removeTree, writeJsonFileAtomic } from '../host/fs.js';
import { GC_ROOT_OWNER_FILE } from '../nix/gc-roots.js';
import { NODE_ID } from './persisted-task.js';

/** The marker file in a task's state dir and GC root entry. */
export const OWNER_FILE = GC_ROOT_OWNER_FILE;
/** Written into every mark: a file of this name with another `plugin` is not ours. */
export const PLUGIN_IDENTITY = 'nomad-driver-nix';
/** The file name of a node without an id (Nomad sent none): such entries are never swept. */
const NO_NODE = 'no-node';

export interface Owner {
  readonly plugin: typeof PLUGIN_IDENTITY;
  /** TaskConfig.node_id of the client that created the entry; '' when Nomad sent none. */
  readonly nodeId: string;
  readonly nodeName: string;
}

export type SharedKind = 'views' | 'etc';

export function owner(nodeId: string, nodeName: string): Owner {
  return { plugin: PLUGIN_IDENTITY, nodeId, nodeName };
}

/** An owner mark as read back, or undefined when `raw` is not one of ours. Pure. */
export function parseOwner(raw: unknown): Owner | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  if (r.plugin !== PLUGIN_IDENTITY || typeof r.nodeId !== 'string' || typeof r.nodeName !== 'string') return undefined;
  if (r.nodeId !== '' && !NODE_ID.test(r.nodeId)) return undefined;
  return owner(r.nodeId, r.nodeName);
}

/** Marks the directory `dir` (a task's state dir) as `who`'s. */
export async function markDir(dir: string, who: Owner): Promise<void> {
  await writeJsonFileAtomic(join(dir, OWNER_FILE), who);
}

/** The owner mark in `dir`, or undefined when it has none of ours. */
export async function ownerOf(dir: string): Promise<Owner | undefined> {
  return parseOwner(await readJsonFile(join(dir, OWNER_FILE)));
}

function sharedDir(stateRoot: string, kind: SharedKind, key: string): string {
  if (!/^[0-9a-f]{32}$/.test(key)) {
    throw failure('start task', `${quote(key)} is not a ${kind} key (32 hex digits)`, { code: 'internal', fix: INTERNAL_FIX });
  }
  return join(stateRoot, 'owners', kind, key);
}

function nodeFile(nodeId: string): string {
  if (nodeId !== '' && !NODE_ID.test(nodeId)) {
    throw failure('start task', `node id ${quote(nodeId)} is not a Nomad node id (letters, digits and "-")`, {
      code: 'invalid_argument',
      fix: 'use a Nomad client of version 1.8 or newer: its node ids are UUIDs',
    });
  }
  return `${nodeId === '' ? NO_NODE : nodeId}.json`;
}

/** Records that node `who` uses the shared entry `kind/key` (before or as it starts using it). */
export async function markShared(stateRoot: string, kind: SharedKind, key: string, who: Owner): Promise<void> {
  await writeJsonFileAtomic(join(sharedDir(stateRoot, kind, key), nodeFile(who.nodeId)), who);
}

/** The node ids ('' for a node without one) that marked the shared entry `kind/key`. */
export async function sharedOwners(stateRoot: string, kind: SharedKind, key: string): Promise<string[]> {
  const dir = sharedDir(stateRoot, kind, key);
  const owners: string[] = [];
  for (const entry of await listEntries(dir)) {
    if (entry.kind !== 'file' || !entry.name.endsWith('.json')) continue;
    const mark = parseOwner(await readJsonFile(join(dir, entry.name)));
    if (mark !== undefined) owners.push(mark.nodeId);
  }
  return owners.sort();
}

/**
 * Drops node `nodeId`'s mark on the shared entry `kind/key` and says whether the entry may now
 * be removed: true only when no other node's mark is left (the marks dir is removed then too).
 */
export async function unmarkShared(stateRoot: string, kind: SharedKind, key: string, nodeId: string): Promise<boolean> {
  const dir = sharedDir(stateRoot, kind, key);
  await removeFile(join(dir, nodeFile(nodeId)));
  if ((await listEntries(dir)).some((e) => e.name.endsWith('.json'))) return false;
  await removeTree(dir);
  return true;
}
