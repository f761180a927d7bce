import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SharedResources } from './shared-resources.js';

/** A promise the test settles by hand, to hold an operation at one point of an interleaving. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** A fake disk of shared directories, recording every create and remove in order. */
function fakeDisk() {
  const present = new Set<string>();
  const log: string[] = [];
  return {
    present,
    log,
    /** Makes `key` (or finds it), after `wait`. */
    create:
      (key: string, wait: Promise<void> = Promise.resolve()) =>
      async () => {
        await wait;
        log.push(present.has(key) ? `found ${key}` : `made ${key}`);
        present.add(key);
        return key;
      },
    remove:
      (key: string, wait: Promise<void> = Promise.resolve()) =>
      async () => {
        await wait;
        log.push(`removed ${key}`);
        present.delete(key);
      },
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('SharedResources', () => {
  it('removes a resource only when its last holder lets go', async () => {
    const shared = new SharedResources();
    const disk = fakeDisk();
    await shared.acquire('views', 'v1', 'task-a', disk.create('v1'));
    await shared.acquire('views', 'v1', 'task-b', disk.create('v1'));
    assert.deepEqual(shared.holders('views', 'v1'), ['task-a', 'task-b']);
    assert.equal(await shared.release('views', 'v1', 'task-a', disk.remove('v1')), false);
    assert.deepEqual([...disk.present], ['v1']);
    assert.equal(await shared.release('views', 'v1', 'task-b', disk.remove('v1')), true);
    assert.deepEqual(disk.log, ['made v1', 'found v1', 'removed v1']);
    assert.deepEqual(shared.holders('views', 'v1'), []);
  });

  it('a release while another task is still acquiring (its StartTask before the bind) keeps the resource', async () => {
    const shared = new SharedResources();
    const disk = fakeDisk();
    await shared.acquire('views', 'v1', 'first', disk.create('v1'));
    // the second task's start is inside its acquire (finding the view) ...
    const slow = gate();
    const second = shared.acquire('views', 'v1', 'second', disk.create('v1', slow.promise));
    await tick();
    // ... when the first task exits and is destroyed
    const released = shared.release('views', 'v1', 'first', disk.remove('v1'));
    slow.open();
    assert.equal(await second, 'v1');
    assert.equal(await released, false, 'the second task holds it');
    assert.deepEqual([...disk.present], ['v1']);
    assert.deepEqual(disk.log, ['made v1', 'found v1']);
  });

  it('an acquire racing a removal waits for it and makes the resource again', async () => {
    const shared = new SharedResources();
    const disk = fakeDisk();
    await shared.acquire('etc', 'e1', 'old', disk.create('e1'));
    const slow = gate();
    const removal = shared.release('etc', 'e1', 'old', disk.remove('e1', slow.promise));
    await tick();
    const acquired = shared.acquire('etc', 'e1', 'new', disk.create('e1'));
    await tick();
    assert.deepEqual(disk.log, ['made e1'], 'the acquire waits while the removal runs');
    slow.open();
    assert.equal(await removal, true);
    assert.equal(await acquired, 'e1');
    assert.deepEqual(disk.log, ['made e1', 'removed e1', 'made e1']);
    assert.deepEqual([...disk.present], ['e1']);
    assert.deepEqual(shared.holders('etc', 'e1'), ['new']);
  });

  it('five failed starts beside one good start of the same closure never remove the view the good one holds', async () => {
    for (let round = 0; round < 20; round += 1) {
      const shared = new SharedResources();
      const disk = fakeDisk();
      const delay = (n: number) => new Promise<void>((resolve) => setTimeout(resolve, n));
      // each start makes or finds the view, then (the bad ones) fail and clean up at once;
      // the good one binds it some time later and runs
      const bad = [1, 2, 3, 4, 5].map(async (n) => {
        await delay((n * 7 + round) % 5);
        await shared.acquire('views', 'v1', `bad-${n}`, disk.create('v1', delay((n + round) % 3)));
        await shared.release('views', 'v1', `bad-${n}`, disk.remove('v1', delay(round % 2)));
      });
      const good = (async () => {
        await delay(round % 4);
        await shared.acquire('views', 'v1', 'good', disk.create('v1', delay(round % 3)));
        disk.log.push('good holds v1');
        await delay(6);
        disk.log.push(disk.present.has('v1') ? 'good binds v1' : 'good finds v1 gone');
      })();
      await Promise.all([...bad, good]);
      const held = disk.log.indexOf('good holds v1');
      assert.deepEqual(
        disk.log.slice(held).filter((l) => l !== 'found v1'),
        ['good holds v1', 'good binds v1'],
        `round ${round}: ${disk.log.join(', ')}`,
      );
      assert.deepEqual(shared.holders('views', 'v1'), ['good']);
      assert.deepEqual([...disk.present], ['v1']);
    }
  });

  it('a failed create leaves no holder, and its release changes nothing', async () => {
    const shared = new SharedResources();
    const disk = fakeDisk();
    await shared.acquire('views', 'v1', 'running', disk.create('v1'));
    await assert.rejects(
      shared.acquire('views', 'v1', 'broken', async () => {
        throw new Error('disk full');
      }),
      /^Error: disk full$/,
    );
    assert.deepEqual(shared.holders('views', 'v1'), ['running']);
    assert.equal(await shared.release('views', 'v1', 'broken', disk.remove('v1')), false);
    assert.equal(await shared.release('views', 'v1', 'running', disk.remove('v1')), true);
    assert.equal(await shared.release('views', 'v1', 'running', disk.remove('v1')), false, 'a repeated release is a no-op');
    assert.deepEqual(disk.log, ['made v1', 'removed v1']);
  });

  it('a recovered task holds its view against the orphan sweep until it is destroyed', async () => {
    const shared = new SharedResources();
    const disk = fakeDisk();
    disk.present.add('v1'); // made by an earlier plugin process
    await shared.acquire('views', 'v1', 'recovered', async () => undefined);
    assert.equal(await shared.removeUnheld('views', 'v1', disk.remove('v1')), false);
    assert.equal(await shared.removeUnheld('views', 'v2', disk.remove('v2')), true, 'a view nobody holds goes');
    assert.equal(await shared.release('views', 'v1', 'recovered', disk.remove('v1')), true);
    assert.deepEqual(disk.log, ['removed v2', 'removed v1']);
  });

  it('the sweep waits for a start that is making the resource, then keeps it', async () => {
    const shared = new SharedResources();
    const disk = fakeDisk();
    const slow = gate();
    const start = shared.acquire('views', 'v1', 'starting', disk.create('v1', slow.promise));
    await tick();
    const sweep = shared.removeUnheld('views', 'v1', disk.remove('v1'));
    slow.open();
    await start;
    assert.equal(await sweep, false);
    assert.deepEqual(disk.log, ['made v1']);
  });

  it('keys of different kinds are independent', async () => {
    const shared = new SharedResources();
    const disk = fakeDisk();
    await shared.acquire('views', 'k', 'a', disk.create('views/k'));
    assert.equal(await shared.removeUnheld('etc', 'k', disk.remove('etc/k')), true);
    assert.deepEqual(shared.holders('views', 'k'), ['a']);
  });
});
