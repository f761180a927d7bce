/**
 * The orphan sweep removes only entries marked as this plugin's for its own Nomad node: two
 * clients sharing a state_dir never sweep each other's tasks, GC roots or shared views, and
 * entries without a mark (an older plugin version, anyone else's files) are left and reported.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLogger } from '../log/logger.js';
import { addTaskGcRoot } from '../nix/gc-roots.js';
import type { RecoveryRecord, Runtime } from '../runtime/runtime.js';
import { markDir, markShared, owner } from './ownership.js';
import { encodePersistedTask, type PersistedTask } from './persisted-task.js';
import { reconcile, type ReconcileContext } from './reconcile.js';
import { SharedResources } from './shared-resources.js';
import { taskKey } from './task.js';

const NODE_A = 'aaaaaaaa-0000-4000-8000-00000000000a';
const NODE_B = 'bbbbbbbb-0000-4000-8000-00000000000b';
const VIEW_SHARED = '11111111111111111111111111111111';
const VIEW_A = '22222222222222222222222222222222';
const VIEW_UNMARKED = '33333333333333333333333333333333';
const ETC_A = '44444444444444444444444444444444';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function record(stateRoot: string, allocId: string, nodeId: string): PersistedTask {
  const taskId = `${allocId}/main/t1`;
  const key = taskKey(taskId);
  return {
    taskId,
    nodeId,
    runtime: 'bwrap',
    key,
    stateDir: join(stateRoot, 'tasks', key),
    viewKey: VIEW_SHARED,
    etcKey: ETC_A,
    pid: 999_999,
    pidStartTime: 1,
    initPid: 999_998,
    initStartTime: 1,
    startedAt: new Date('2026-11-22T10:00:00.000Z'),
    cgroup: { version: 'v1', root: '/sys/fs/cgroup', path: `nomad-driver-nix/${key}` },
    oomKillsBefore: 0,
    user: { uid: 65534, gid: 65534 },
    capabilities: [],
    argv: ['/bin/true'],
    cwd: '/local',
  };
}

async function fixture() {
  const root = mkdtempSync(join(tmpdir(), 'nix-reconcile-'));
  roots.push(root);
  const stateRoot = join(root, 'state');
  const gcRoots = join(root, 'gcroots');
  mkdirSync(gcRoots, { recursive: true });
  const tasks: Record<string, PersistedTask> = {};
  for (const [name, alloc, nodeId] of [
    ['a', 'alloc-a', NODE_A],
    ['b', 'alloc-b', NODE_B],
  ] as const) {
    const task = record(stateRoot, alloc, nodeId);
    tasks[name] = task;
    mkdirSync(task.stateDir, { recursive: true });
    await markDir(task.stateDir, owner(nodeId, `node-${name}`));
    writeFileSync(join(task.stateDir, 'task.json'), encodePersistedTask(task));
    await addTaskGcRoot(gcRoots, task.key, ['/nix/store/00000000000000000000000000000000-x'], owner(nodeId, `node-${name}`));
  }
  // an entry of an older plugin version (or anyone's): no mark
  const legacy = record(stateRoot, 'alloc-old', '');
  mkdirSync(legacy.stateDir, { recursive: true });
  writeFileSync(
    join(legacy.stateDir, 'task.json'),
    JSON.stringify({
      ...JSON.parse(encodePersistedTask(legacy).toString('utf8')),
      version: 2,
      stateDir: legacy.stateDir,
      gcRootKey: legacy.key,
      user: { name: 'nobody', uid: 65534, gid: 65534 },
      plan: { ops: [] },
    }),
  );
  await addTaskGcRoot(gcRoots, legacy.key, ['/nix/store/00000000000000000000000000000000-x']);
  mkdirSync(join(gcRoots, 'someone-elses'));
  // a GC root of node A whose task dir is gone
  await addTaskGcRoot(gcRoots, 'alloc-c_main_t1', ['/nix/store/00000000000000000000000000000000-x'], owner(NODE_A, 'node-a'));
  for (const view of [VIEW_SHARED, VIEW_A, VIEW_UNMARKED]) {
    mkdirSync(join(stateRoot, 'views', view), { recursive: true });
    writeFileSync(join(stateRoot, 'views', `${view}.complete`), '');
  }
  await markShared(stateRoot, 'views', VIEW_SHARED, owner(NODE_A, 'node-a'));
  await markShared(stateRoot, 'views', VIEW_SHARED, owner(NODE_B, 'node-b'));
  await markShared(stateRoot, 'views', VIEW_A, owner(NODE_A, 'node-a'));
  mkdirSync(join(stateRoot, 'etc', ETC_A), { recursive: true });
  await markShared(stateRoot, 'etc', ETC_A, owner(NODE_A, 'node-a'));
  return { stateRoot, gcRoots, tasks, legacy };
}

function context(stateRoot: string, gcRoots: string, nodeId: string, killed: string[], left: string[]): ReconcileContext {
  const runtime = {
    killOrphan: (r: RecoveryRecord) => killed.push(r.key),
    forget: async () => undefined,
  } as unknown as Runtime;
  return {
    stateDir: stateRoot,
    gcRootsDir: gcRoots,
    logger: createLogger({ module: 'test', level: 'error', sink: () => undefined }),
    runtimeNamed: () => runtime,
    liveCgroups: new Set(),
    nodeId,
    isLiveKey: () => false,
    shared: new SharedResources(),
    leftAlone: (entry, why) => left.push(`${entry}: ${why}`),
  };
}

describe('orphan sweep ownership', () => {
  it('removes what an interrupted view build or removal left, only for keys this node alone marks and no task holds', async () => {
    const { stateRoot, gcRoots } = await fixture();
    const views = join(stateRoot, 'views');
    const HELD = '55555555555555555555555555555555';
    await markShared(stateRoot, 'views', HELD, owner(NODE_A, 'node-a'));
    const leftovers = [
      `.tmp-${VIEW_A}-0a0a0a`, // this node's key: removed
      `.trash-${VIEW_A}-0b0b0b`,
      `.tmp-${VIEW_SHARED}-0c0c0c`, // node B marks it too: it may be building it now
      `.tmp-${VIEW_UNMARKED}-0d0d0d`, // nobody's mark: not provably ours
      `.tmp-${HELD}-0e0e0e`, // a start of this process holds the key
    ];
    for (const name of leftovers) mkdirSync(join(views, name));
    writeFileSync(join(views, `${HELD}.complete`), ''); // a marker without its view, of the held key
    const shared = new SharedResources();
    let release!: () => void;
    const holding = shared.acquire('views', HELD, 'starting-task', () => new Promise<void>((resolve) => (release = resolve)));
    const sweep = reconcile({ ...context(stateRoot, gcRoots, NODE_A, [], []), shared });
    await new Promise((resolve) => setTimeout(resolve, 200));
    release();
    await holding;
    const report = await sweep;
    assert.deepEqual(report.viewLeftovers, [`.tmp-${VIEW_A}-0a0a0a`, `.trash-${VIEW_A}-0b0b0b`]);
    assert.deepEqual(
      readdirSync(views)
        .filter((name) => name.startsWith('.'))
        .sort(),
      [`.tmp-${HELD}-0e0e0e`, `.tmp-${VIEW_SHARED}-0c0c0c`, `.tmp-${VIEW_UNMARKED}-0d0d0d`].sort(),
    );
  });

  it("sweeps only its own node's tasks, GC roots and shared entries; leaves the other node's and unmarked ones, saying why", async () => {
    const { stateRoot, gcRoots, tasks, legacy } = await fixture();
    const a = tasks.a as PersistedTask;
    const b = tasks.b as PersistedTask;
    const killed: string[] = [];
    const left: string[] = [];
    const report = await reconcile(context(stateRoot, gcRoots, NODE_A, killed, left));
    // (the task's own GC root goes with its task)
    assert.deepEqual(report, { tasks: [a.key], gcRoots: ['alloc-c_main_t1'], views: [VIEW_A], etc: [ETC_A], viewLeftovers: [] });
    assert.deepEqual(killed, [a.key]);
    assert.deepEqual(readdirSync(join(stateRoot, 'tasks')).sort(), [b.key, legacy.key].sort());
    assert.deepEqual(readdirSync(gcRoots).sort(), [b.key, legacy.key, 'someone-elses'].sort());
    // the view node B still uses stays; node A's mark on it is gone
    assert.deepEqual(readdirSync(join(stateRoot, 'views')).sort(), [VIEW_SHARED, `${VIEW_SHARED}.complete`, VIEW_UNMARKED, `${VIEW_UNMARKED}.complete`].sort());
    assert.deepEqual(readdirSync(join(stateRoot, 'owners', 'views', VIEW_SHARED)), [`${NODE_B}.json`]);
    assert.equal(existsSync(join(stateRoot, 'owners', 'views', VIEW_A)), false);
    assert.deepEqual(
      left.sort(),
      [
        `${b.stateDir}: it belongs to Nomad node "${NODE_B}", not "${NODE_A}"`,
        `${legacy.stateDir}: it carries no owner mark of this plugin`,
        `${join(gcRoots, b.key)}: it belongs to Nomad node "${NODE_B}", not "${NODE_A}"`,
        `${join(gcRoots, legacy.key)}: it carries no owner mark of this plugin`,
        `${join(gcRoots, 'someone-elses')}: it carries no owner mark of this plugin`,
        `${join(stateRoot, 'views', VIEW_UNMARKED)}: it carries no owner mark of this plugin`,
      ].sort(),
    );

    // node B's sweep then removes its own, and the view once no node marks it
    const killedB: string[] = [];
    const reportB = await reconcile(context(stateRoot, gcRoots, NODE_B, killedB, []));
    assert.deepEqual(reportB, { tasks: [b.key], gcRoots: [], views: [VIEW_SHARED], etc: [], viewLeftovers: [] });
    assert.deepEqual(readdirSync(gcRoots).sort(), [legacy.key, 'someone-elses'].sort());
    assert.deepEqual(killedB, [b.key]);
  });

  it('never touches a task it holds, nor shared entries a task of this process holds', async () => {
    const { stateRoot, gcRoots, tasks } = await fixture();
    const a = tasks.a as PersistedTask;
    const killed: string[] = [];
    const shared = new SharedResources();
    await shared.acquire('views', VIEW_A, 'a-starting-task', async () => undefined);
    await shared.acquire('etc', ETC_A, 'a-starting-task', async () => undefined);
    const report = await reconcile({ ...context(stateRoot, gcRoots, NODE_A, killed, []), isLiveKey: (key) => key === a.key, shared });
    assert.deepEqual(report, { tasks: [], gcRoots: ['alloc-c_main_t1'], views: [], etc: [], viewLeftovers: [] });
    assert.deepEqual(killed, []);
  });
});
