/**
 * Issue 15: the driver on cgroups v2 under systemd, through the real Nomad agent, both runtimes.
 * Runs on the host against the qemu guest of scripts/v2-guest.sh (boot it first; `npm run
 * test:v2` does everything): commands go over the guest's ssh, the `nomad` CLI and the HTTP
 * API over its forwarded port. In the guest, Nomad runs as a systemd service installed by
 * scripts/install-service.sh from the release tarball `npm run package` wrote (the single-file
 * plugin; the guest sees this checkout at its host path) and the Nomad binary
 * e2e/build-nomad.sh built (shared in at /opt/v2-guest/cache).
 *
 * The guest is 15-40x slower than the host (TCG): timeouts are long on purpose.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from '../test/support/nix-fixtures.js';
import { nixJobHcl, shConfig } from '../e2e/support/job-hcl.js';
import { nomadBinary, REPO_ROOT } from '../e2e/support/nomad-agent.js';

const SCRIPT = `${REPO_ROOT}scripts/v2-guest.sh`;
const ADDRESS = process.env.V2_GUEST_NOMAD_ADDR ?? `http://127.0.0.1:${process.env.V2_GUEST_HTTP_PORT ?? '14646'}`;
const RUNTIMES = (process.env.V2_GUEST_RUNTIMES ?? 'bwrap,runc').split(',');
const SLICE = '/sys/fs/cgroup/nomad.slice';
const MIB = 1024 * 1024;

interface Result {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A shell command line in the guest, as root. */
function guest(command: string, options: { timeoutMs?: number; input?: Buffer | string } = {}): Result {
  const result = spawnSync('bash', [SCRIPT, 'run', command], {
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 300_000,
    maxBuffer: 64 * MIB,
    ...(options.input === undefined ? {} : { input: options.input }),
  });
  return { status: result.status ?? -1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** Its trimmed stdout; throws with the output when it fails. */
function guestOk(command: string, timeoutMs?: number): string {
  const r = guest(command, timeoutMs === undefined ? {} : { timeoutMs });
  if (r.status !== 0) throw new Error(`in the guest: ${command}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

function nomad(args: readonly string[], timeoutMs = 300_000): Result {
  const result = spawnSync(nomadBinary(), [...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, NOMAD_ADDR: ADDRESS },
  });
  return { status: result.status ?? -1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/**
 * GET `path` from the guest's HTTP API, with curl: fetch() through qemu's port forward left
 * node:test with "Promise resolution is still pending but the event loop has already
 * resolved" (the forward accepts on the host before the guest does).
 */
async function api<T>(path: string): Promise<T> {
  const result = spawnSync('curl', ['-sS', '--fail-with-body', '--max-time', '60', `${ADDRESS}${path}`], { encoding: 'utf8', timeout: 90_000 });
  if (result.status !== 0) throw new Error(`GET ${path}: curl exit ${result.status}: ${result.stderr}${result.stdout}`);
  return JSON.parse(result.stdout) as T;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 300_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  const journal = guest('journalctl -u nomad --no-pager -n 40', { timeoutMs: 60_000 }).stdout;
  throw new Error(`timed out waiting for ${what}${lastError === undefined ? '' : ` (${String(lastError)})`}\njournal:\n${journal}`);
}

interface TaskEvent {
  readonly Type: string;
  readonly DisplayMessage: string;
  readonly Details?: Record<string, string>;
  readonly ExitCode?: number;
}
interface Allocation {
  readonly ID: string;
  readonly ClientStatus: string;
  readonly TaskStates: Record<string, { State: string; Failed: boolean; Events: TaskEvent[] }> | null;
  readonly AllocatedResources?: { Tasks?: Record<string, { Cpu?: { ReservedCores?: number[] | null } }> };
}

function runJob(hcl: string): string {
  const r = guest('f=$(mktemp) && cat >"$f" && nomad job run -detach "$f"', { input: hcl });
  if (r.status !== 0) throw new Error(`nomad job run failed: ${r.stdout}${r.stderr}`);
  const id = /^job\s+"([^"]+)"/m.exec(hcl)?.[1];
  assert.ok(id !== undefined);
  return id;
}

async function waitForAlloc(job: string, predicate: (a: Allocation) => boolean, what: string, timeoutMs = 600_000): Promise<Allocation> {
  return waitFor(
    `${what} (job ${job})`,
    async () => {
      const stubs = await api<{ ID: string; CreateIndex: number }[]>(`/v1/job/${job}/allocations`);
      const newest = [...stubs].sort((a, b) => b.CreateIndex - a.CreateIndex)[0];
      if (newest === undefined) return undefined;
      const alloc = await api<Allocation>(`/v1/allocation/${newest.ID}`);
      return predicate(alloc) ? alloc : undefined;
    },
    timeoutMs,
  );
}

const running = (a: Allocation) => a.TaskStates?.main?.State === 'running';
const dead = (a: Allocation) => a.TaskStates?.main?.State === 'dead';
const events = (a: Allocation) => (a.TaskStates?.main?.Events ?? []).map((e) => `${e.Type}: ${e.DisplayMessage}`).join('\n');

async function stopJob(job: string): Promise<void> {
  guestOk(`nomad job stop -purge -detach ${job} >/dev/null`);
  await waitFor(`job ${job} to be gone`, async () => {
    const jobs = await api<{ ID: string }[]>('/v1/jobs');
    return jobs.some((j) => j.ID === job) ? undefined : true;
  });
}

/** The nix driver of the guest's node once `predicate` holds. */
async function nixDriver(predicate: (attributes: Record<string, string>, healthy: boolean) => boolean, what: string) {
  return waitFor(what, async () => {
    const nodes = await api<{ ID: string }[]>('/v1/nodes');
    const id = nodes[0]?.ID;
    if (id === undefined) return undefined;
    const node = await api<{ Drivers: Record<string, { Attributes: Record<string, string>; Healthy: boolean; HealthDescription: string }> }>(`/v1/node/${id}`);
    const driver = node.Drivers.nix;
    return driver !== undefined && predicate(driver.Attributes, driver.Healthy) ? driver : undefined;
  });
}

const scopeDir = (alloc: string, slice = 'share.slice') => `${SLICE}/${slice}/${alloc}.main.scope`;
const pluginPid = () => guestOk("pgrep -xf '/opt/nomad/plugins/nix' || true");

let busybox: string;
const sh = (script: string, extra = '') => `${shConfig(busybox, script)}${extra}`;

before(async () => {
  nomadBinary();
  const reach = guest('stat -fc %T /sys/fs/cgroup', { timeoutMs: 60_000 });
  assert.equal(reach.status, 0, `the v2 guest does not answer (boot it: scripts/v2-guest.sh boot): ${reach.stderr}`);
  assert.equal(reach.stdout.trim(), 'cgroup2fs', 'the guest runs a unified cgroup hierarchy');
  // the busybox fixture, the same store path as on the host
  busybox = busyboxPath();
  const exported = spawnSync('nix-store', ['--export', busybox], { maxBuffer: 64 * MIB });
  assert.equal(exported.status, 0, String(exported.stderr));
  const imported = guest('nix-store --import >/dev/null', { input: exported.stdout as Buffer });
  assert.equal(imported.status, 0, imported.stderr);
  // Nomad as a systemd service, with the single-file plugin of this checkout's release tarball
  const release = `${REPO_ROOT}build/release`;
  const tarball = readdirSync(release).find((f) => /^nomad-driver-nix-.*\.tar\.gz$/.test(f));
  assert.ok(tarball !== undefined, `no release tarball in ${release}: run npm run package`);
  // the host's Nomad cache is shared in at /opt/v2-guest/cache (v2-guest.sh)
  const guestNomad = `/opt/v2-guest/cache/${basename(dirname(nomadBinary()))}/nomad`;
  const install = guest(`bash ${REPO_ROOT}scripts/install-service.sh --plugin ${release}/${tarball} --nomad ${guestNomad}`, {
    timeoutMs: 900_000,
  });
  assert.equal(install.status, 0, `install-service.sh failed:\n${install.stdout}${install.stderr}`);
  guestOk('nomad operator scheduler set-config -memory-oversubscription=true >/dev/null');
});

after(() => {
  guest("for j in $(nomad job status -short 2>/dev/null | awk 'NR>1 {print $1}'); do nomad job stop -purge $j; done >/dev/null 2>&1; true");
});

for (const runtime of RUNTIMES)
  describe(`cgroups v2 under systemd (${runtime})`, { timeout: 3_600_000 }, () => {
    before(async () => {
      guestOk(`sed -i 's/^\\(\\s*runtime\\s*=\\s*\\).*/\\1"${runtime}"/' /etc/nomad.d/nix.hcl && systemctl restart nomad`);
      await nixDriver((a, healthy) => healthy && a['driver.nix.runtime'] === runtime, `the nix driver to run ${runtime}`);
    });

    it('fingerprints cgroups = v2 and is healthy', async () => {
      const driver = await nixDriver((a) => a['driver.nix.runtime'] === runtime, 'the fingerprint');
      assert.equal(driver.Attributes['driver.nix.cgroups'], 'v2');
      assert.equal(driver.Healthy, true, driver.HealthDescription);
    });

    it("puts the task in Nomad's scope with cpu.weight, memory.max/low and pids.max; stats and alloc exec work", async () => {
      const job = runJob(
        nixJobHcl({
          id: `limits-${runtime}`,
          type: 'service',
          config: sh('echo started; while :; do :; done', '\n        pids_limit = 77'),
          resources: { cpu: 300, memory: 48, memoryMax: 96 },
        }),
      );
      const alloc = await waitForAlloc(job, running, 'the busy loop to run');
      const dir = scopeDir(alloc.ID);
      const files = guestOk(`cd ${dir} && for f in cpu.weight memory.max memory.low pids.max; do printf '%s=%s\\n' $f "$(cat $f)"; done`);
      assert.deepEqual(Object.fromEntries(files.split('\n').map((l) => l.split('='))), {
        // 300 shares, converted as opencontainers/cgroups does (limits.ts cpuSharesToWeight)
        'cpu.weight': '39',
        'memory.max': String(96 * MIB),
        'memory.low': String(48 * MIB),
        'pids.max': '77',
      });
      const commands = guestOk(`for p in $(cat ${dir}/cgroup.procs); do tr '\\0' ' ' </proc/$p/cmdline; echo; done`);
      assert.match(commands, /while :/, `the command is in the task scope:\n${commands}`);
      // stats: CPU and memory through the API and the CLI
      const stats = await waitFor('non-zero CPU in the task stats', async () => {
        const s = await api<{ ResourceUsage?: { CpuStats?: { Percent?: number }; MemoryStats?: { Usage?: number; RSS?: number } } }>(
          `/v1/client/allocation/${alloc.ID}/stats`,
        ).catch(() => undefined);
        return (s?.ResourceUsage?.CpuStats?.Percent ?? 0) > 0 ? s : undefined;
      });
      assert.ok((stats.ResourceUsage?.MemoryStats?.Usage ?? 0) > 0, JSON.stringify(stats.ResourceUsage));
      const cli = nomad(['alloc', 'status', '-stats', alloc.ID]);
      assert.equal(cli.status, 0, cli.stderr);
      const mhz = /(\d+)\/300 MHz/.exec(cli.stdout);
      assert.ok(mhz !== null && Number(mhz[1]) > 0, cli.stdout);
      // usage against `memory` (the reservation), memory_max beneath it as Nomad prints them
      assert.match(cli.stdout, /\d+(\.\d+)? [KMG]iB\/48 MiB/, cli.stdout);
      assert.match(cli.stdout, /Max: 96 MiB/, cli.stdout);
      // alloc exec: the command runs, in the task's cgroup, at the task's oom_score_adj (0), not
      // at the agent's -1000 of HashiCorp's unit (Nomad issue 6672: then the OOM killer cannot
      // pick it, and over memory.max its allocations fail instead)
      const exec = nomad(['alloc', 'exec', alloc.ID, 'sh', '-c', 'echo exec-ok; cat /proc/self/cgroup /proc/self/oom_score_adj']);
      assert.equal(exec.status, 0, exec.stderr);
      // runc: a cgroup namespace rooted at the scope. bwrap: its cgroup namespace is made
      // before the sandbox init joins the scope, so it is rooted at the plugin's cgroup
      // (nomad.service) and the scope reads relative to that: /../../nomad.slice/…
      assert.equal(exec.stdout.trim(), `exec-ok\n0::${runtime === 'runc' ? '/' : `/../../nomad.slice/share.slice/${alloc.ID}.main.scope`}\n0`);
      await stopJob(job);
      // the scope can outlive the purge a little (under runc it was still there right after it)
      await waitFor('the task scope to be removed', () => (guestOk(`test -e ${dir} && echo present || echo gone`) === 'gone' ? true : undefined));
    });

    it('a task with reserved cores gets its cpuset.cpus in reserve.slice', async () => {
      const job = runJob(nixJobHcl({ id: `cores-${runtime}`, type: 'service', config: sh('exec sleep 3600') }).replace('cpu    = 100', 'cores  = 1'));
      const alloc = await waitForAlloc(job, running, 'the sleeper with a core to run');
      const cores = alloc.AllocatedResources?.Tasks?.main?.Cpu?.ReservedCores ?? [];
      assert.equal(cores.length, 1, JSON.stringify(alloc.AllocatedResources));
      assert.equal(guestOk(`cat ${scopeDir(alloc.ID, 'reserve.slice')}/cpuset.cpus`), String(cores[0]));
      await stopJob(job);
    });

    it('an OOM kill is read from memory.events and reported', async () => {
      const job = runJob(
        nixJobHcl({ id: `hog-${runtime}`, config: sh('echo allocating; exec dd if=/dev/zero of=/dev/null bs=200M count=1'), resources: { memory: 32 } }),
      );
      const alloc = await waitForAlloc(job, dead, 'the memory hog to die');
      assert.equal(alloc.ClientStatus, 'failed', events(alloc));
      const terminated = alloc.TaskStates?.main?.Events.find((e) => e.Type === 'Terminated');
      assert.equal(terminated?.Details?.oom_killed, 'true', JSON.stringify(terminated));
      assert.equal(terminated?.ExitCode, 137);
      await stopJob(job);
    });

    it('a task survives `systemctl restart nomad` and a SIGKILLed plugin, then stops leaving nothing', async () => {
      const job = runJob(nixJobHcl({ id: `survivor-${runtime}`, type: 'service', config: sh('exec sleep 3600') }));
      const alloc = await waitForAlloc(job, running, 'the sleeper to run');
      const dir = scopeDir(alloc.ID);
      const procs = guestOk(`cat ${dir}/cgroup.procs`);
      assert.notEqual(procs, '');
      guestOk('systemctl restart nomad');
      await nixDriver((_, healthy) => healthy, 'the driver after the restart');
      await new Promise((r) => setTimeout(r, 20_000));
      assert.equal(guestOk(`cat ${dir}/cgroup.procs`), procs, 'the same processes, in the same scope');
      assert.ok(running(await api<Allocation>(`/v1/allocation/${alloc.ID}`)));

      const plugin = pluginPid();
      assert.match(plugin, /^\d+$/, `one plugin process: ${plugin}`);
      // the guest's clock at the kill: the journal since then (the restart's recovery is older)
      const killedAt = guestOk(`date +%s && kill -KILL ${plugin}`);
      await waitFor('a new plugin', () => {
        const now = pluginPid();
        return /^\d+$/.test(now) && now !== plugin ? now : undefined;
      });
      await nixDriver((_, healthy) => healthy, 'the driver after the plugin was killed');
      // Nomad's task runner takes the new plugin's handle only once it has seen the old one's
      // WaitTask stream end and called RecoverTask (86 s after the kill in the guest; the node's
      // driver reads healthy long before, from the fingerprint before the kill). Until then exec
      // answers "plugin is shut down", and while the new plugin was still starting once it broke
      // off ("failed to exec into task: unexpected EOF", no exec session in the agent's log): so
      // exec only after the new plugin logged this task's recovery
      await waitFor(
        'RecoverTask of the task through the new plugin',
        () =>
          guestOk(`journalctl -u nomad --no-pager -q --since=@${killedAt} | grep -c 'task recovered.*task_id=${alloc.ID}/' || true`) !== '0' ? true : undefined,
        600_000,
      );
      assert.equal(guestOk(`cat ${dir}/cgroup.procs`), procs, 'the same processes, in the same scope');
      // RecoverTask returns just before the task runner swaps its handle: "plugin is shut down"
      // is still possible for a moment
      const exec = await waitFor('alloc exec through the new plugin', () => {
        const r = nomad(['alloc', 'exec', alloc.ID, 'sh', '-c', 'echo recovered']);
        return r.status === 0 || !r.stderr.includes('plugin is shut down') ? r : undefined;
      });
      assert.equal(exec.status, 0, exec.stderr);
      assert.equal(exec.stdout.trim(), 'recovered');

      await stopJob(job);
      await waitFor('the task scope to be removed', () => (guestOk(`test -e ${dir} && echo present || echo gone`) === 'gone' ? true : undefined));
      for (const pid of procs.split('\n')) assert.equal(guestOk(`test -e /proc/${pid} && echo alive || echo gone`), 'gone', `task pid ${pid}`);
    });

    it('nothing is left: no scopes, no task processes, no runc containers', async (t) => {
      assert.equal(guestOk(`find ${SLICE} -name '*.scope' | sort`), '');
      // a bwrap process outside the (removed) scope was seen 2 s after the task stopped, and
      // gone soon after: once "<defunct>" (pid 1024), once running (pid 1025, ppid 963); which
      // process it belongs to is not established. Waited for, bounded; what remains fails
      const processes = () => guestOk("ps -eo pid=,ppid=,stat=,comm= | awk '$4 ~ /^(bwrap|sleep|dd)$/'");
      let left = processes();
      if (left !== '') t.diagnostic(`at first (pid ppid stat comm): ${left.replace(/\s+/g, ' ')}`);
      await waitFor(
        'no task processes',
        () => {
          left = processes();
          return left === '' ? true : undefined;
        },
        120_000,
      ).catch(() => undefined);
      assert.equal(left, '', 'task processes (pid ppid stat comm)');
      assert.equal(guestOk('ls /var/lib/nomad-driver-nix/runc 2>/dev/null || true'), '');
    });
  });
