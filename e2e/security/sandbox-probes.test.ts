/**
 * The sandbox against a task acting alone (issue 10's "probes that hold"): code running inside
 * a default, unprivileged task tries what an attacker would, through a real Nomad agent, on
 * both runtimes. Each probe prints `<name>: <result>` and the whole list must equal the
 * expected one: the host's files and /tmp, other store paths, another allocation's secrets,
 * /nix/var, host processes, host devices, writes through the read-only store view, mounts,
 * privileges (capabilities, no_new_privs) and setuid.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildWithBusybox, busyboxPath } from '../../test/support/nix-fixtures.js';
import { nixJobHcl, shConfig } from '../support/job-hcl.js';
import { allocLogs, eventMessages, isDead, isRunning, runJob, waitForAlloc } from '../support/jobs.js';
import { nomadBinary, type NomadAgent } from '../support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from '../support/task-agent.js';

let busybox: string;
/** A store path that is not in the probing task's closure. */
let otherStorePath: string;
/** Files the test plants on the host, which no task may see. */
const marker = `nix-probe-marker-${process.pid}`;
const hostRootMarker = join('/', marker);
const hostTmpMarker = join('/tmp', marker);

before(() => {
  nomadBinary();
  busybox = busyboxPath();
  otherStorePath = buildWithBusybox('probe-other', 'mkdir -p $out && echo secret-of-another-closure > $out/data');
  writeFileSync(hostRootMarker, 'host root\n');
  writeFileSync(hostTmpMarker, 'host tmp\n');
});

after(() => {
  rmSync(hostRootMarker, { force: true });
  rmSync(hostTmpMarker, { force: true });
});

/** The host directory of an allocation below the agent's work dir (a -dev agent keeps them in $TMPDIR). */
function hostAllocDir(agent: NomadAgent, allocId: string): string {
  const search = (dir: string, depth: number): string | undefined => {
    if (depth < 0) return undefined;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (name === allocId) return path;
      try {
        if (statSync(path).isDirectory()) {
          const found = search(path, depth - 1);
          if (found !== undefined) return found;
        }
      } catch {
        // raced with Nomad's own cleanup
      }
    }
    return undefined;
  };
  const found = search(agent.workDir, 4);
  if (found === undefined) throw new Error(`no directory of allocation ${allocId} below ${agent.workDir}`);
  return found;
}

/** `p name command…`: prints `name: yes` when the command succeeds, `name: no` otherwise. */
function probeScript(paths: { otherSecrets: string; otherStorePath: string }): string {
  return [
    'p() { n=$1; shift; if "$@" >/dev/null 2>&1; then echo "$n: yes"; else echo "$n: no"; fi; }',
    `p host-root-file test -e ${hostRootMarker}`,
    `p host-tmp-file test -e ${hostTmpMarker}`,
    'p host-etc-shadow test -e /etc/shadow',
    // /usr holds only the /usr/bin/env link into the closure, nothing of the host's /usr
    'p host-usr sh -c "test -e /usr/lib || test -e /usr/share || test -e /usr/bin/id || test \\"$(ls /usr/bin)\\" != env"',
    'p nix-var test -e /nix/var',
    `p other-store-path test -e ${paths.otherStorePath}`,
    `p other-alloc-secrets test -e ${paths.otherSecrets}`,
    'p store-create touch /nix/store/probe',
    `p store-file-write sh -c 'echo x >> ${busybox}/bin/busybox'`,
    `p store-dir-create mkdir ${busybox}/probe`,
    `p store-chmod chmod 777 ${busybox}/bin/busybox`,
    'p etc-write sh -c "echo x >> /etc/passwd"',
    'p mount-tmpfs sh -c "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m"',
    'p remount-store mount -o remount,rw /nix/store',
    'p dev-disk sh -c "ls /dev | grep -E \'^(sd|vd|nvme|xvd|kvm|mem|kmsg)\'"',
    'p sys-kernel-write sh -c "echo 1 > /proc/sys/kernel/sysrq"',
    'p sysrq-trigger sh -c "echo h > /proc/sysrq-trigger"',
    // the Nomad agent (its command line names -plugin-dir=) is a host process; the bracket keeps grep from matching its own command line
    'p host-agent-process sh -c "grep -l -- -plugin-di[r]= /proc/[0-9]*/cmdline"',
    'echo "pids visible: $(ls -d /proc/[0-9]* | wc -l)"',
    'echo "$(grep ^NoNewPrivs /proc/self/status | tr -s "\\t" " ")"',
    'echo "$(grep ^CapEff /proc/self/status | tr -s "\\t" " ")"',
    'echo "$(grep ^CapBnd /proc/self/status | tr -s "\\t" " " | sed "s/ 0*$/ none/")"',
    'echo "uid: $(id -u) gid: $(id -g)"',
    'echo "setuid files in the closure: $(find /nix/store -perm -4000 -o -perm -2000 | wc -l)"',
  ].join('\n');
}

for (const runtime of RUNTIMES)
  describe(`a task cannot reach beyond its sandbox (${runtime})`, { timeout: 600_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    let agent: NomadAgent;

    before(async () => {
      taskAgent = await startTaskAgent(`probes-${runtime}`, { runtime });
      agent = taskAgent.agent;
    });

    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    it('host files, other closures and allocations, the store, mounts, devices and privileges are out of reach', async () => {
      // another allocation with a secret of its own
      const victim = runJob(
        agent,
        nixJobHcl({ id: `victim-${runtime}`, type: 'service', config: shConfig(busybox, 'echo victim-secret > /secrets/token; exec sleep 600') }),
      );
      const victimAlloc = await waitForAlloc(agent, victim, (a) => isRunning(a, 'main'), 'the victim task to run');
      const otherSecrets = join(hostAllocDir(agent, victimAlloc.ID), 'main', 'secrets', 'token');
      // the planted files exist on the host, so a "no" below means "out of reach", not "absent"
      await agent.waitFor('the victim secret on the host', async () => (existsSync(otherSecrets) ? true : undefined));
      assert.ok(existsSync(hostRootMarker) && existsSync(hostTmpMarker) && existsSync(otherStorePath));

      const job = runJob(agent, nixJobHcl({ id: `probe-${runtime}`, config: shConfig(busybox, probeScript({ otherSecrets, otherStorePath })) }));
      const alloc = await waitForAlloc(agent, job, (a) => isDead(a, 'main'), 'the probes to finish');
      assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main'));
      const lines = allocLogs(agent, alloc.ID, 'main').trim().split('\n');
      // the sandbox's init, the shell, `ls` and the command substitution's subshell: no host process
      const pids = lines.find((l) => l.startsWith('pids visible: '));
      assert.ok(pids !== undefined && Number(pids.slice('pids visible: '.length)) <= 5, pids);
      assert.deepEqual(
        lines.filter((l) => l !== pids),
        [
          'host-root-file: no',
          'host-tmp-file: no',
          'host-etc-shadow: no',
          'host-usr: no',
          'nix-var: no',
          'other-store-path: no',
          'other-alloc-secrets: no',
          'store-create: no',
          'store-file-write: no',
          'store-dir-create: no',
          'store-chmod: no',
          'etc-write: no',
          'mount-tmpfs: no',
          'remount-store: no',
          'dev-disk: no',
          'sys-kernel-write: no',
          'sysrq-trigger: no',
          'host-agent-process: no',
          'NoNewPrivs: 1',
          'CapEff: 0000000000000000',
          'CapBnd: none',
          'uid: 65534 gid: 65534',
          'setuid files in the closure: 0',
        ],
      );
    });
  });
