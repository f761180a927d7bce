/**
 * Issue 15, item 2: scripts/install-service.sh lays Nomad and the plugin out as HashiCorp's
 * packages do, from the release tarball, without this checkout, idempotently. This host has no
 * systemd as PID 1, so the script runs into a scratch root (--prefix) and the test checks the
 * files, their modes and the unit; the cgroups v2 guest (branch v2-guest) runs it for real.
 * The "plugin" and "nomad" here are copies of /bin/true (an ELF file is all the script checks).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash, randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = join(ROOT, 'scripts', 'install-service.sh');
const RELEASE = 'nomad-driver-nix-9.9.9-linux-amd64';
const PLUGIN_HCL = 'plugin "nix" {\n  config {\n    runtime = "runc"\n  }\n}\n';

let work: string;
let tarball: string;
let fakeNomad: string;
let fakePlugin: string;

/** A release tarball as scripts/package.mjs lays it out, with SHA256SUMS beside it. */
function makeRelease(dir: string, plugin: string): string {
  const stage = join(dir, 'stage', RELEASE);
  mkdirSync(stage, { recursive: true });
  copyFileSync(plugin, join(stage, 'nix'));
  copyFileSync(SCRIPT, join(stage, 'install-service.sh'));
  writeFileSync(join(stage, 'nix.hcl'), PLUGIN_HCL);
  const path = join(dir, `${RELEASE}.tar.gz`);
  const tar = spawnSync('tar', ['-czf', path, '-C', join(dir, 'stage'), RELEASE], { encoding: 'utf8' });
  assert.equal(tar.status, 0, tar.stderr);
  const sum = createHash('sha256').update(readFileSync(path)).digest('hex');
  writeFileSync(join(dir, 'SHA256SUMS'), `${sum}  ${RELEASE}.tar.gz\n`);
  return path;
}

function install(args: readonly string[], script = SCRIPT) {
  const result = spawnSync('bash', [script, ...args], { encoding: 'utf8', timeout: 60_000, cwd: work });
  return { status: result.status ?? -1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** Every path below `root` with its type, mode, size, mtime and inode: what a run changed. */
function tree(root: string, dir = ''): string[] {
  return readdirSync(join(root, dir))
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      const stat = statSync(join(root, path));
      const line = `${stat.isDirectory() ? 'd' : 'f'} ${(stat.mode & 0o7777).toString(8)} /${path}`;
      return stat.isDirectory() ? [line, ...tree(root, path)] : [line];
    });
}

function fingerprint(root: string): string[] {
  return tree(root).map((line) => {
    const stat = statSync(join(root, line.slice(line.indexOf('/'))));
    return `${line} ${stat.size} ${stat.mtimeMs} ${stat.ino}`;
  });
}

/** The [Service] section of a unit as key → values. */
function serviceKeys(unit: string): Map<string, string[]> {
  const section = unit.split(/^\[/m).find((s) => s.startsWith('Service]')) ?? '';
  const keys = new Map<string, string[]>();
  for (const line of section.split('\n').slice(1)) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match === null) continue;
    keys.set(match[1] ?? '', [...(keys.get(match[1] ?? '') ?? []), match[2] ?? '']);
  }
  return keys;
}

const NOMAD_HCL = `# Nomad agent configuration (written once by install-service.sh; yours to edit).
# A single node, server and client in one. The nix plugin's settings are in nix.hcl.
data_dir  = "/opt/nomad/data"
bind_addr = "0.0.0.0"

server {
  enabled          = true
  bootstrap_expect = 1
}

client {
  enabled = true
  servers = ["127.0.0.1"]
}
`;

const EXPECTED_TREE = [
  'd 755 /etc',
  'd 755 /etc/nomad.d',
  'f 644 /etc/nomad.d/nix.hcl',
  'f 644 /etc/nomad.d/nomad.hcl',
  'd 755 /etc/systemd',
  'd 755 /etc/systemd/system',
  'f 644 /etc/systemd/system/nomad.service',
  'd 755 /opt',
  'd 755 /opt/nomad',
  'd 711 /opt/nomad/data',
  'd 755 /opt/nomad/plugins',
  'f 755 /opt/nomad/plugins/nix',
  'd 755 /usr',
  'd 755 /usr/local',
  'd 755 /usr/local/bin',
  'f 755 /usr/local/bin/nomad',
];

before(() => {
  work = mkdtempSync(join(tmpdir(), 'install-service-'));
  chmodSync(work, 0o755);
  fakeNomad = join(work, 'nomad-bin');
  fakePlugin = join(work, 'plugin-bin');
  copyFileSync('/bin/true', fakeNomad);
  copyFileSync('/bin/false', fakePlugin); // another ELF file than the fake nomad
  mkdirSync(join(work, 'release'));
  tarball = makeRelease(join(work, 'release'), fakePlugin);
});

after(() => rmSync(work, { recursive: true, force: true }));

describe('scripts/install-service.sh --prefix <scratch root>', () => {
  let root: string;
  let first: ReturnType<typeof install>;

  before(() => {
    root = mkdtempSync(join(work, 'root-'));
    chmodSync(root, 0o755);
    process.umask(0o022);
    first = install(['--plugin', tarball, '--nomad', fakeNomad, '--prefix', root]);
  });

  it('installs Nomad, the plugin from the release tarball, the config and the unit, with these modes', () => {
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(tree(root), EXPECTED_TREE);
    assert.deepEqual(readFileSync(join(root, 'usr/local/bin/nomad')), readFileSync(fakeNomad));
    assert.deepEqual(readFileSync(join(root, 'opt/nomad/plugins/nix')), readFileSync(fakePlugin));
    assert.equal(readFileSync(join(root, 'etc/nomad.d/nomad.hcl'), 'utf8'), NOMAD_HCL);
    assert.equal(
      readFileSync(join(root, 'etc/nomad.d/nix.hcl'), 'utf8'),
      `# The nix task driver plugin: written once by install-service.sh; yours to edit.\n# The plugin executable is /opt/nomad/plugins/nix.\nplugin_dir = "/opt/nomad/plugins"\n\n${PLUGIN_HCL}`,
    );
    assert.match(first.stdout, /^installed below \/.*\(systemctl not run\)$/m);
  });

  it("writes HashiCorp's nomad.service with Delegate=yes: KillMode=process, LimitNOFILE, Restart=on-failure, TasksMax=infinity", () => {
    const keys = serviceKeys(readFileSync(join(root, 'etc/systemd/system/nomad.service'), 'utf8'));
    assert.deepEqual(Object.fromEntries(keys), {
      EnvironmentFile: ['-/etc/nomad.d/nomad.env'],
      ExecReload: ['/bin/kill -HUP $MAINPID'],
      ExecStart: ['/usr/local/bin/nomad agent -config /etc/nomad.d'],
      KillMode: ['process'],
      KillSignal: ['SIGINT'],
      LimitNOFILE: ['65536'],
      LimitNPROC: ['infinity'],
      Restart: ['on-failure'],
      RestartSec: ['2'],
      TasksMax: ['infinity'],
      OOMScoreAdjust: ['-1000'],
      Delegate: ['yes'],
    });
  });

  it('systemd-analyze verify finds no problem in the unit (the binary path swapped for /bin/true, absent here)', (t) => {
    if (spawnSync('systemd-analyze', ['--version']).status !== 0) return t.skip('no systemd-analyze on this host');
    const unit = join(work, 'nomad.service');
    writeFileSync(
      unit,
      readFileSync(join(root, 'etc/systemd/system/nomad.service'), 'utf8').replace('ExecStart=/usr/local/bin/nomad ', 'ExecStart=/bin/true '),
    );
    const verify = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(verify.stderr, '');
    assert.equal(verify.status, 0);
  });

  it('a second run changes nothing: every file unchanged, same inodes and mtimes', () => {
    const before = fingerprint(root);
    const again = install(['--plugin', tarball, '--nomad', fakeNomad, '--prefix', root]);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(fingerprint(root), before);
    assert.deepEqual(again.stdout.trim().split('\n'), [
      'unchanged  /usr/local/bin/nomad',
      'unchanged  /etc/nomad.d/nomad.hcl',
      'unchanged  /etc/nomad.d/nix.hcl',
      'unchanged  /opt/nomad/plugins/nix',
      'unchanged  /etc/systemd/system/nomad.service',
      `installed below ${root} (systemctl not run)`,
    ]);
  });

  it("a new plugin replaces the old one; the operator's edited nomad.hcl is kept", () => {
    writeFileSync(join(root, 'etc/nomad.d/nomad.hcl'), 'data_dir = "/srv/nomad"\n');
    const newer = join(work, 'plugin-newer');
    copyFileSync(fakeNomad, newer);
    const result = install(['--plugin', newer, '--prefix', root]);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(readFileSync(join(root, 'opt/nomad/plugins/nix')), readFileSync(newer));
    assert.equal(readFileSync(join(root, 'etc/nomad.d/nomad.hcl'), 'utf8'), 'data_dir = "/srv/nomad"\n');
    assert.match(result.stdout, /^installed {2}\/opt\/nomad\/plugins\/nix$/m);
    assert.match(result.stdout, /^kept {7}\/etc\/nomad\.d\/nomad\.hcl \(edited: yours\)$/m);
    // no --nomad: the one installed before is used
    assert.match(readFileSync(join(root, 'etc/systemd/system/nomad.service'), 'utf8'), /^ExecStart=\/usr\/local\/bin\/nomad agent -config \/etc\/nomad\.d$/m);
  });
});

describe('install-service.sh from the unpacked release tarball, away from this checkout', () => {
  it('installs the nix beside it, with its nix.hcl', () => {
    const unpacked = mkdtempSync(join(work, 'unpacked-'));
    const extract = spawnSync('tar', ['-xzf', tarball, '-C', unpacked], { encoding: 'utf8' });
    assert.equal(extract.status, 0, extract.stderr);
    const root = mkdtempSync(join(work, 'root-'));
    const result = install(['--nomad', fakeNomad, '--prefix', root], join(unpacked, RELEASE, 'install-service.sh'));
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(readFileSync(join(root, 'opt/nomad/plugins/nix')), readFileSync(fakePlugin));
    assert.ok(readFileSync(join(root, 'etc/nomad.d/nix.hcl'), 'utf8').endsWith(PLUGIN_HCL));
  });
});

describe('install-service.sh on a systemd host (a private mount namespace over /opt, /etc and /run, a fake systemctl)', () => {
  /**
   * Runs the script without --prefix inside `unshare --mount`, with tmpfs over the directories
   * it writes and a systemctl that logs its arguments; `setup` runs there first. Returns the
   * script's result, systemctl's calls, and what `after` printed.
   */
  function onSystemdHost(setup: string, args: readonly string[], after = '') {
    const log = join(work, `systemctl-${randomInt(1e9)}.log`);
    const bin = mkdtempSync(join(work, 'bin-'));
    chmodSync(bin, 0o755);
    writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >> ${log}\n`, { mode: 0o755 });
    writeFileSync(log, '');
    const script = [
      'set -e',
      'for d in /opt /etc/nomad.d /etc/systemd/system /usr/local/bin /run; do mkdir -p "$d"; mount -t tmpfs -o mode=0755 tmpfs "$d"; done',
      'mkdir -p /run/systemd/system',
      setup,
      `set +e; PATH=${bin}:$PATH bash ${SCRIPT} ${args.join(' ')}; status=$?; set -e`,
      after,
      'exit $status',
    ].join('\n');
    const result = spawnSync('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script], { encoding: 'utf8', timeout: 120_000 });
    return { status: result.status ?? -1, stdout: result.stdout ?? '', stderr: result.stderr ?? '', calls: readFileSync(log, 'utf8').trim().split('\n') };
  }

  // a nomad that answers the script's readiness check
  const fakeAgent = (release = '1') => {
    const path = join(work, `nomad-agent-${randomInt(1e9)}`);
    writeFileSync(path, `#!/bin/sh\n# release ${release}\necho "driver.nix.runtime = bwrap"\n`, { mode: 0o755 });
    return path;
  };

  it('a fresh install: daemon-reload, enable, stop, start (no old plugin to end), and waits for the driver', () => {
    const result = onSystemdHost('', ['--plugin', tarball, '--nomad', fakeAgent()]);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(result.calls, ['daemon-reload', 'enable --quiet nomad', 'stop nomad', 'start nomad']);
    assert.doesNotMatch(result.stdout, /ending the old plugin/);
    assert.match(result.stdout, /^driver\.nix\.runtime = bwrap$/m);
  });

  it('a new Nomad binary, the same plugin: restart', () => {
    const result = onSystemdHost(`PATH=/usr/bin:/bin bash ${SCRIPT} --plugin ${tarball} --nomad ${fakeAgent()} --prefix / >/dev/null 2>&1 || true`, [
      '--plugin',
      tarball,
      '--nomad',
      fakeAgent('2'),
    ]);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(result.calls, ['daemon-reload', 'enable --quiet nomad', 'restart nomad']);
  });

  it('nothing changed: start (a no-op when running), no restart', () => {
    const agent = fakeAgent();
    const result = onSystemdHost(`PATH=/usr/bin:/bin bash ${SCRIPT} --plugin ${tarball} --nomad ${agent} --prefix / >/dev/null 2>&1 || true`, [
      '--plugin',
      tarball,
      '--nomad',
      agent,
    ]);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(result.calls, ['daemon-reload', 'enable --quiet nomad', 'start nomad']);
  });

  it('a new plugin: stops Nomad, ends an old plugin process left running (the next agent would reattach to it) with SIGTERM, starts Nomad', () => {
    const agent = fakeAgent();
    const newer = join(work, 'plugin-newest');
    copyFileSync('/bin/true', newer);
    const result = onSystemdHost(
      ['mkdir -p /opt/nomad/plugins', 'cp /bin/sleep /opt/nomad/plugins/nix', '/opt/nomad/plugins/nix 300 &', 'old=$!', 'sleep 0.5'].join('\n'),
      ['--plugin', newer, '--nomad', agent],
      'code=0; wait $old || code=$?; echo "old plugin exit $code"',
    );
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(result.calls, ['daemon-reload', 'enable --quiet nomad', 'stop nomad', 'start nomad']);
    assert.match(result.stdout, /^ending the old plugin: \d+$/m);
    assert.match(result.stdout, /^old plugin exit 143$/m);
  });
});

describe('install-service.sh refuses bad input and leaves nothing behind', () => {
  const refuses = (what: string, args: (root: string) => string[], message: RegExp) =>
    it(what, () => {
      const root = mkdtempSync(join(work, 'root-'));
      const result = install(args(root));
      assert.equal(result.status, 1, result.stdout);
      assert.match(result.stderr, message);
      assert.deepEqual(readdirSync(root), []);
    });

  refuses(
    'a tarball that does not match its SHA256SUMS',
    (root) => {
      const dir = mkdtempSync(join(work, 'tampered-'));
      const path = makeRelease(dir, fakePlugin);
      writeFileSync(join(dir, 'SHA256SUMS'), `${'0'.repeat(64)}  ${RELEASE}.tar.gz\n`);
      return ['--plugin', path, '--nomad', fakeNomad, '--prefix', root];
    },
    /^install-service\.sh: failed to verify ".*\.tar\.gz": it does not match .*SHA256SUMS; fix: download the tarball and SHA256SUMS again$/m,
  );
  refuses(
    'the build/plugins/nix shell launcher instead of the single file',
    (root) => {
      const launcher = join(work, 'launcher');
      writeFileSync(launcher, '#!/bin/sh\nexec node main.js\n', { mode: 0o755 });
      return ['--plugin', launcher, '--nomad', fakeNomad, '--prefix', root];
    },
    /failed to install the plugin ".*launcher": not an executable \(ELF\) file; fix: pass the single-file plugin/,
  );
  refuses(
    'no Nomad given and none installed',
    (root) => ['--plugin', fakePlugin, '--prefix', root],
    /failed to find Nomad: neither \/usr\/bin\/nomad nor \/usr\/local\/bin\/nomad exists; fix: install HashiCorp's nomad package or pass --nomad <binary>/,
  );
  refuses('an unknown argument', (root) => ['--prefix', root, '--frobnicate'], /failed to read the arguments: unknown argument "--frobnicate"/);
});

/** The settings of the `telemetry` blocks of the agent config files in `dir`, in order. */
function telemetrySettings(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => [...readFileSync(join(dir, name), 'utf8').matchAll(/^telemetry \{\n([^}]*)\}/gm)])
    .flatMap((m) =>
      (m[1] ?? '')
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line !== '' && !line.startsWith('#')),
    );
}

describe('the agent config install-service.sh writes makes Nomad collect task stats', () => {
  // Nomad's client opens no TaskStats stream unless telemetry.publish_allocation_metrics is on
  // (hashicorp/nomad v1.11.3 client/allocrunner/taskrunner/stats_hook.go Poststart); `agent
  // -dev` turns it on, so only a service install (the cgroups v2 guest) showed `"Tasks":{}`.
  it("with the checkout's plugin-config/nix.hcl: publish_allocation_metrics = true", () => {
    const root = mkdtempSync(join(work, 'root-'));
    const result = install(['--plugin', fakePlugin, '--nomad', fakeNomad, '--prefix', root]);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(telemetrySettings(join(root, 'etc/nomad.d')), ['publish_allocation_metrics = true']);
  });

  it('with no nix.hcl anywhere (the built-in block): publish_allocation_metrics = true', () => {
    const alone = mkdtempSync(join(work, 'alone-'));
    copyFileSync(SCRIPT, join(alone, 'install-service.sh'));
    const root = mkdtempSync(join(work, 'root-'));
    const result = install(['--plugin', fakePlugin, '--nomad', fakeNomad, '--prefix', root], join(alone, 'install-service.sh'));
    assert.equal(result.status, 0, result.stderr);
    assert.doesNotMatch(readFileSync(join(root, 'etc/nomad.d/nix.hcl'), 'utf8'), /require_signatures/, 'the built-in block, not plugin-config/nix.hcl');
    assert.deepEqual(telemetrySettings(join(root, 'etc/nomad.d')), ['publish_allocation_metrics = true']);
  });
});
