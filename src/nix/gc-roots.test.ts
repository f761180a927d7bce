import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { addTaskGcRoot, gcRootKeyProblem, listTaskGcRoots, removeTaskGcRoot } from './gc-roots.js';

const nixStore = (...args: string[]) =>
  execFileSync('nix-store', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    .trim()
    .split('\n');

describe('task GC roots', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'gc-roots-test-'));
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('writes one symlink per path into the entry', async () => {
    const dir = tempDir();
    const entry = await addTaskGcRoot(join(dir, 'roots'), 'alloc1-web', ['/nix/store/aaa-web', '/nix/store/bbb-tool']);
    assert.equal(entry, join(dir, 'roots', 'alloc1-web'));
    assert.deepEqual(readdirSync(entry).sort(), ['0', '1']);
    assert.equal(readlinkSync(join(entry, '0')), '/nix/store/aaa-web');
    assert.equal(readlinkSync(join(entry, '1')), '/nix/store/bbb-tool');
    assert.deepEqual(readdirSync(join(dir, 'roots')), ['alloc1-web']);
  });

  it('replaces an existing entry', async () => {
    const dir = tempDir();
    await addTaskGcRoot(dir, 'k', ['/nix/store/aaa-old', '/nix/store/bbb-old']);
    await addTaskGcRoot(dir, 'k', ['/nix/store/ccc-new']);
    assert.deepEqual(readdirSync(join(dir, 'k')), ['0']);
    assert.equal(readlinkSync(join(dir, 'k', '0')), '/nix/store/ccc-new');
    assert.deepEqual(readdirSync(dir), ['k']);
  });

  it('lists entries, not temporaries or stray files', async () => {
    const dir = tempDir();
    assert.deepEqual(await listTaskGcRoots(join(dir, 'absent')), []);
    await addTaskGcRoot(dir, 'b', ['/nix/store/aaa-x']);
    await addTaskGcRoot(dir, 'a', []);
    mkdirSync(join(dir, 'c.tmp-123456'));
    writeFileSync(join(dir, 'file'), '');
    assert.deepEqual(await listTaskGcRoots(dir), ['a', 'b']);
  });

  it('removes an entry and leftovers of interrupted writes, idempotently', async () => {
    const dir = tempDir();
    await addTaskGcRoot(dir, 'k', ['/nix/store/aaa-x']);
    await addTaskGcRoot(dir, 'k2', ['/nix/store/aaa-x']);
    mkdirSync(join(dir, 'k.tmp-abcdef'));
    await removeTaskGcRoot(dir, 'k');
    assert.deepEqual(readdirSync(dir), ['k2']);
    await removeTaskGcRoot(dir, 'k');
    await removeTaskGcRoot(join(dir, 'absent'), 'k');
  });

  it('rejects keys that are not one plain file name', async () => {
    assert.equal(gcRootKeyProblem('alloc-1_web.task'), undefined);
    await assert.rejects(addTaskGcRoot('/tmp/x', 'a/b', []), {
      message: 'failed to add GC root "a/b": the key "a/b" contains "/"; fix: use a key made of the allocation id and task name, without "/"',
      code: 'invalid_argument',
    });
    await assert.rejects(removeTaskGcRoot('/tmp/x', ''), {
      message: 'failed to remove GC root "": the key "" is empty; fix: use a key made of the allocation id and task name, without "/"',
    });
    await assert.rejects(addTaskGcRoot('/tmp/x', '..', []), { message: /^failed to add GC root "\.\.": the key "\.\." is "\." or contains "\.\."; fix: / });
    await assert.rejects(addTaskGcRoot('/tmp/x', 'k.tmp-1', []), {
      message: /^failed to add GC root "k\.tmp-1": the key "k\.tmp-1" contains "\.tmp-" \(reserved for entries being written\); fix: /,
    });
  });

  it('rejects relative paths', async () => {
    await assert.rejects(addTaskGcRoot(tempDir(), 'k', ['nix/store/aaa-x']), {
      message: 'failed to add GC root "k": the store path "nix/store/aaa-x" is not an absolute path',
      code: 'invalid_argument',
    });
  });

  it('says when the roots directory cannot be written', async () => {
    const file = join(tempDir(), 'file');
    writeFileSync(file, '');
    await assert.rejects(addTaskGcRoot(join(file, 'roots'), 'k', []), {
      message: `failed to add GC root "k": cannot write ${file}/roots/k: ENOTDIR: not a directory, mkdir '${file}/roots'; fix: check that gc_roots_dir is writable by the plugin (it should lie below /nix/var/nix/gcroots)`,
      code: 'failed_precondition',
    });
  });

  it("protects the paths from Nix's garbage collector while the entry exists", async () => {
    // A store path of our own, so the check neither needs nor touches anyone else's paths.
    const source = join(tempDir(), 'gc-root-probe');
    mkdirSync(source);
    writeFileSync(join(source, 'nonce'), randomBytes(16).toString('hex'));
    const [path = ''] = nixStore('--add', source);
    const rootsDir = join('/nix/var/nix/gcroots', `nomad-driver-nix-test-${randomBytes(4).toString('hex')}`);
    try {
      assert.ok(nixStore('--gc', '--print-dead').includes(path), 'an unrooted path is dead');
      await addTaskGcRoot(rootsDir, 'alloc-web', [path]);
      assert.ok(nixStore('--gc', '--print-live').includes(path), 'a rooted path is live');
      assert.ok(!nixStore('--gc', '--print-dead').includes(path), 'a rooted path is not dead');
      await removeTaskGcRoot(rootsDir, 'alloc-web');
      assert.ok(nixStore('--gc', '--print-dead').includes(path), 'the path is dead again');
    } finally {
      rmSync(rootsDir, { recursive: true, force: true });
      execFileSync('nix-store', ['--delete', path], { stdio: 'ignore' });
    }
  });
});
