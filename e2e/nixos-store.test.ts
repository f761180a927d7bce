/**
 * The NixOS layout: /nix/store is a read-only bind mount of itself, so link(2) from it into
 * the driver's state dir fails with EXDEV even on one file system. The agent (and so the
 * plugin) runs in a mount namespace of its own where the store is mounted exactly that way;
 * a task must still start, from a store view built where the store is writable.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from '../test/support/nix-fixtures.js';
import { nixJobHcl, shConfig } from './support/job-hcl.js';
import { allocLogs, eventMessages, isDead, runJob, waitForAlloc } from './support/jobs.js';
import { nomadBinary, type NomadAgent } from './support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from './support/task-agent.js';

let taskAgent: TaskAgent | undefined;
let agent: NomadAgent;
let busybox: string;

const NIXOS_STORE = [
  'unshare',
  '--mount',
  '--propagation',
  'private',
  '--',
  'sh',
  '-c',
  'mount --bind /nix/store /nix/store && mount -o remount,bind,ro /nix/store && exec "$@"',
  'nixos-store',
];

before(() => {
  nomadBinary();
  busybox = busyboxPath(); // realised outside: inside, the read-only store takes no new paths
});

for (const runtime of RUNTIMES)
  describe(`a NixOS-style read-only store bind mount (${runtime})`, { timeout: 300_000 }, () => {
    before(async () => {
      taskAgent = await startTaskAgent(`nixos-${runtime}`, { wrapper: NIXOS_STORE, runtime });
      agent = taskAgent.agent;
    });

    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    it('the host namespace is untouched: /nix/store is not a mount point here', () => {
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[4]);
      assert.ok(!mounts.includes('/nix/store'));
    });

    it('runs a task from a store view built in a private mount namespace', async () => {
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'nixos',
          config: shConfig(busybox, 'ls /nix/store; echo ran'),
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isDead(a, 'main'), 'the task to finish');
      const events = eventMessages(alloc, 'main');
      assert.equal(alloc.ClientStatus, 'complete', events + allocLogs(agent, alloc.ID, 'main', true));
      assert.match(events, /Prepared a store view of 1 store paths in \d+ ms \(in a private mount namespace: the store is a read-only bind mount\)/);
      assert.equal(allocLogs(agent, alloc.ID, 'main'), `${busybox.slice('/nix/store/'.length)}\nran\n`);
    });
  });
