/**
 * BwrapRuntime.launch must answer whatever bubblewrap does: with a stand-in for bwrap that
 * exits at once (while the launch is still closing its log handles) and one that never reports
 * a pid, the launch rejects within its bound and leaves no process behind (issue 10, item 8).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { planRoot } from '../../rootfs/plan.js';
import type { LaunchRequest } from '../runtime.js';
import { BwrapRuntime } from './runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'bwrap-launch-test-'));
const marker = join(dir, 'fake-bwrap.pid');

function fakeBwrap(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\necho $$ > ${marker}\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

function request(stateDir: string): LaunchRequest {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  return {
    key: 'launch-test',
    plan: planRoot({ storeView: '/var/lib/nix-driver/views/v1', allocDir: '/opt/nomad/alloc/a1', taskName: 'web', etcDir: '/var/lib/nix-driver/etc/a1-web' }),
    process: { argv: ['/nix/store/abc-web/bin/web'], env: {}, cwd: '/local', uid, gid, hostname: 'web-1', capabilities: [] },
    stateDir,
    stdoutPath: '/dev/null',
    stderrPath: '/dev/null',
    cgroup: { path: '/nomad-driver-nix/launch-test', join: async () => undefined, contains: () => false },
  };
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

/** Rejects when `promise` has not settled within `ms`: the launch must answer, not hang. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the launch did not answer within ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Occupies every libuv thread-pool thread (4) with an open of a FIFO that has no reader, so that
 * file work queued after it waits; `release()` gives each FIFO a reader and closes the handles.
 */
async function busyThreadPool(count = 4) {
  const fifos = Array.from({ length: count }, (_, i) => join(dir, `blocker-${i}-${Date.now()}`));
  for (const fifo of fifos) execFileSync('mkfifo', [fifo]);
  const opens = fifos.map((fifo) => open(fifo, constants.O_WRONLY));
  return {
    async release() {
      const readers = fifos.map((fifo) => openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
      for (const handle of await Promise.all(opens)) await handle.close();
      for (const fd of readers) closeSync(fd);
    },
  };
}

async function until(what: string, probe: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('BwrapRuntime.launch', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('rejects when bwrap exits while the launch is still closing its log handles (the exit is not lost)', async () => {
    const bwrap = fakeBwrap('exits-at-once', 'exit 3');
    rmSync(marker, { force: true });
    const stateDir = mkdtempSync(join(dir, 'state-'));
    // the launch's open of its stdout FIFO holds one thread until the test gives it a reader
    const stdoutFifo = join(dir, 'stdout-fifo');
    execFileSync('mkfifo', [stdoutFifo]);
    const launching = new BwrapRuntime(bwrap, undefined, 60_000).launch({ ...request(stateDir), stdoutPath: stdoutFifo });
    const outcome = launching.then(
      () => 'resolved',
      (error: unknown) => error,
    );
    const pool = await busyThreadPool();
    // the open completes; its thread takes the last blocker: the launch spawns bwrap, and its
    // closes of the log handles wait behind the blockers
    const reader = openSync(stdoutFifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      await until('the stand-in bwrap to exit and be reaped', () => {
        const pid = existsSync(marker) ? Number(readFileSync(marker, 'utf8').trim()) : 0;
        return pid > 0 && !existsSync(`/proc/${pid}`);
      });
    } finally {
      await pool.release();
      closeSync(reader);
    }
    const error = await within(outcome, 15_000);
    assert.ok(error instanceof Error, `the launch ${String(error)}`);
    // (the stand-in bwrap prints nothing, so the diagnostic second setup has no message either)
    assert.equal(
      error.message,
      "failed to launch task: bubblewrap exited with code 3 before the command ran, and a second setup of its sandbox gave no message; fix: check the task's closure and the plugin's state_dir; bubblewrap's message is also the first line of the task's stderr log",
    );
    assert.equal((error as Error & { code: string }).code, 'failed_precondition');
  });

  it('rejects with a deadline error and kills bwrap when it neither reports a pid nor exits', async () => {
    const bwrap = fakeBwrap('never-reports', 'exec sleep 600');
    rmSync(marker, { force: true });
    const stateDir = mkdtempSync(join(dir, 'state-'));
    const error = await within(new BwrapRuntime(bwrap, undefined, 1_000).launch(request(stateDir)), 15_000).then(
      () => assert.fail('the launch resolved'),
      (e: unknown) => e as Error & { code: string },
    );
    const pid = Number(readFileSync(marker, 'utf8').trim());
    assert.equal(
      error.message,
      `failed to launch task: bubblewrap (pid ${pid}) neither reported the sandbox's pid on its --info-fd nor exited within 1 s; fix: check that bubblewrap works on the client (bwrap --ro-bind / / true) and see the plugin log`,
    );
    assert.equal(error.code, 'deadline_exceeded');
    assert.equal(alive(pid), false, 'the stand-in bwrap was killed');
  });
});
