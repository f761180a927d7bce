/**
 * Issue 15, item 1: the plugin in plugin_dir is one file. `scripts/package.mjs` (npm run package)
 * writes the release; this test packages the current build into a temporary directory, checks
 * the tarball against SHA256SUMS, copies ONLY `nix` from the tarball into a fresh plugin_dir and
 * runs a real Nomad agent with it, on both runtimes: a task runs, `nomad alloc exec` works (on
 * bwrap through the nix-exec helper the file carries) and so does `nomad alloc exec -t` (node-pty's
 * addon, carried too). The plugin process is that file itself (go-plugin's pid) and maps nothing
 * of this checkout.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as pty from 'node-pty';
import { busyboxPath } from '../test/support/nix-fixtures.js';
import { nixJobHcl, shConfig } from './support/job-hcl.js';
import { isRunning, runJob, waitForAlloc } from './support/jobs.js';
import { nomadBinary, REPO_ROOT } from './support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from './support/task-agent.js';

const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
const ARCH = process.arch === 'x64' ? 'amd64' : process.arch;
const RELEASE = `nomad-driver-nix-${version}-linux-${ARCH}`;

let releaseDir: string;
let busybox: string;

before(() => {
  nomadBinary();
  busybox = busyboxPath();
  releaseDir = mkdtempSync(join(tmpdir(), 'nix-e2e-release-'));
  const packaged = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'package.mjs')], {
    encoding: 'utf8',
    timeout: 600_000,
    env: { ...process.env, NOMAD_DRIVER_NIX_RELEASE_DIR: releaseDir },
  });
  assert.equal(packaged.status, 0, `npm run package failed:\n${packaged.stdout}\n${packaged.stderr}`);
});

after(() => {
  if (releaseDir !== undefined) rmSync(releaseDir, { recursive: true, force: true });
});

describe('the release', () => {
  it(`SHA256SUMS checks ${RELEASE}.tar.gz, which holds nix, install-service.sh and nix.hcl`, () => {
    assert.deepEqual(readdirSync(releaseDir).sort(), ['SHA256SUMS', 'nix', `${RELEASE}.tar.gz`]);
    const check = spawnSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: releaseDir, encoding: 'utf8' });
    assert.equal(check.stdout, `${RELEASE}.tar.gz: OK\n`, check.stderr);
    assert.equal(check.status, 0);
    const list = spawnSync('tar', ['-tvzf', `${RELEASE}.tar.gz`], { cwd: releaseDir, encoding: 'utf8' });
    assert.deepEqual(
      list.stdout
        .trim()
        .split('\n')
        .map((line) => {
          const [mode, owner, , , , name] = line.split(/\s+/);
          return `${mode} ${owner} ${name}`;
        }),
      [`drwxr-xr-x 0/0 ${RELEASE}/`, `-rwxr-xr-x 0/0 ${RELEASE}/install-service.sh`, `-rwxr-xr-x 0/0 ${RELEASE}/nix`, `-rw-r--r-- 0/0 ${RELEASE}/nix.hcl`],
    );
  });
});

describe('the single file unpacks its files into ${TMPDIR}/nomad-driver-nix-<uid>/<version>-<hash>/, a directory of its own', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'nix-e2e-unpack-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  /** Runs `nix` without the magic cookie: it unpacks, then says it is a plugin and exits 1. */
  const runIn = (dir: string) => spawnSync(join(releaseDir, 'nix'), [], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, TMPDIR: dir } });

  it('lays out dist/native/nix-exec and pty.node (no .proto files), private to root, and reuses them on the next start', () => {
    const dir = mkdtempSync(join(tmp, 'fresh-'));
    const first = runIn(dir);
    assert.equal(first.status, 1, first.stderr);
    assert.match(first.stderr, /^This binary is a plugin: the Nix task driver for HashiCorp Nomad\./m);
    const base = join(dir, 'nomad-driver-nix-0');
    const versions = readdirSync(base);
    assert.equal(versions.length, 1, versions.join(' '));
    assert.match(versions[0] ?? '', new RegExp(`^${version.replaceAll('.', '\\.')}-[0-9a-f]{16}$`));
    const root = join(base, versions[0] ?? '');
    const mode = (path: string) => (statSync(join(root, path)).mode & 0o7777).toString(8);
    assert.equal((statSync(base).mode & 0o7777).toString(8), '700');
    assert.deepEqual(readdirSync(root).sort(), ['.complete', 'dist', 'pty.node']);
    assert.deepEqual(
      ['.', 'pty.node', 'dist', 'dist/native', 'dist/native/nix-exec'].map((p) => `${p} ${mode(p)}`),
      ['. 700', 'pty.node 755', 'dist 700', 'dist/native 700', 'dist/native/nix-exec 755'],
    );
    assert.deepEqual(readFileSync(join(root, 'dist/native/nix-exec')), readFileSync(join(REPO_ROOT, 'dist/native/nix-exec')));
    const inode = statSync(join(root, 'pty.node')).ino;
    assert.equal(runIn(dir).status, 1);
    assert.equal(statSync(join(root, 'pty.node')).ino, inode, 'unpacked once');
  });

  for (const [what, squat] of [
    [
      'owned by another user',
      (base: string) => {
        mkdirSync(base, { mode: 0o700 });
        chownSync(base, 65534, 65534);
        return 'mode 700, owner 65534';
      },
    ],
    [
      'writable by others',
      (base: string) => {
        mkdirSync(base);
        chmodSync(base, 0o777);
        return 'mode 777, owner 0';
      },
    ],
    [
      'a symbolic link',
      (base: string) => {
        symlinkSync(mkdtempSync(join(tmp, 'elsewhere-')), base);
        return 'a symbolic link';
      },
    ],
  ] as const)
    it(`refuses a ${'${TMPDIR}'}/nomad-driver-nix-0 ${what}, writes nothing into it and does not start`, () => {
      const dir = mkdtempSync(join(tmp, 'squatted-'));
      const base = join(dir, 'nomad-driver-nix-0');
      const found = squat(base);
      const result = runIn(dir);
      assert.equal(result.status, 1);
      assert.deepEqual(JSON.parse(result.stderr.trim().split('\n')[0] ?? ''), {
        '@level': 'error',
        '@message': `failed to unpack the plugin's files: ${JSON.stringify(base)} is not a private directory of uid 0 (found ${found}); fix: remove ${JSON.stringify(base)} or point TMPDIR at a directory of the agent's own (in the agent's environment: Environment=TMPDIR=… in its systemd unit)`,
        '@module': 'nix',
      });
      assert.deepEqual(readdirSync(base), []);
    });
});

/** Pids whose executable is `path` (the plugin runs as the file itself: no interpreter, no wrapper). */
function pidsRunning(path: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        return readlinkSync(`/proc/${p}/exe`) === path ? [Number(p)] : [];
      } catch {
        return [];
      }
    });
}

for (const runtime of RUNTIMES)
  describe(`the single-file plugin alone in plugin_dir (${runtime})`, { timeout: 900_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    let pluginDir: string;
    let allocId: string;

    before(async () => {
      const unpacked = mkdtempSync(join(tmpdir(), 'nix-e2e-tarball-'));
      try {
        const extract = spawnSync('tar', ['-xzf', join(releaseDir, `${RELEASE}.tar.gz`), '-C', unpacked], { encoding: 'utf8' });
        assert.equal(extract.status, 0, extract.stderr);
        pluginDir = mkdtempSync(join(tmpdir(), 'nix-e2e-plugins-'));
        copyFileSync(join(unpacked, RELEASE, 'nix'), join(pluginDir, 'nix'));
      } finally {
        rmSync(unpacked, { recursive: true, force: true });
      }
      taskAgent = await startTaskAgent(`single-file-${runtime}`, { runtime, pluginDir });
      const n = String(1_000_000 + randomInt(8_000_000));
      const job = runJob(taskAgent.agent, nixJobHcl({ id: 'single-file', type: 'service', config: shConfig(busybox, `exec sleep ${n}`) }));
      allocId = (await waitForAlloc(taskAgent.agent, job, (a) => isRunning(a, 'main'), 'the task to run')).ID;
    });

    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
      if (pluginDir !== undefined) rmSync(pluginDir, { recursive: true, force: true });
    });

    const cliEnv = () => ({ ...process.env, NOMAD_ADDR: taskAgent?.agent.address ?? '' });

    it("`nomad alloc exec <alloc> sh -c 'id -u; pwd; exit 4'` runs in the task", () => {
      const result = spawnSync(nomadBinary(), ['alloc', 'exec', allocId, 'sh', '-c', 'id -u; pwd; echo to-stderr >&2; exit 4'], {
        encoding: 'utf8',
        timeout: 120_000,
        input: '',
        env: cliEnv(),
      });
      assert.equal(result.stdout, '65534\n/local\n', result.stderr);
      assert.equal(result.stderr, 'to-stderr\n');
      assert.equal(result.status, 4);
    });

    it('`nomad alloc exec -t <alloc> sh`: a terminal of the task (node-pty from the file), exit 3', async () => {
      const term = pty.spawn(nomadBinary(), ['alloc', 'exec', '-t', allocId, 'sh'], { name: 'xterm', cols: 100, rows: 30, env: cliEnv() });
      let output = '';
      term.onData((d) => (output += d));
      const exited = new Promise<{ exitCode: number }>((resolve) => term.onExit(resolve));
      try {
        await taskAgent?.agent
          .waitFor('the shell prompt', async () => (/\$ /.test(output) ? true : undefined), 60_000)
          .catch((e: Error) => {
            throw new Error(`${e.message}\noutput: ${JSON.stringify(output)}`);
          });
        term.write('tty; stty size; exit 3\r');
        const { exitCode } = await Promise.race([
          exited,
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit; output: ${JSON.stringify(output)}`)), 60_000)),
        ]);
        assert.equal(exitCode, 3, output);
        const lines = output.split('\r\n');
        assert.ok(
          lines.some((l) => /^\/dev\/pts\/\d+$/.test(l)),
          `a terminal of the task's own /dev/pts: ${JSON.stringify(output)}`,
        );
        assert.ok(lines.includes('30 100'), `the terminal size: ${JSON.stringify(output)}`);
      } finally {
        term.kill('SIGKILL');
      }
    });

    it('the plugin is the file itself, a child of the agent, and maps pty.node from its own unpacked copy, nothing of this checkout', () => {
      const agent = taskAgent?.agent;
      assert.ok(agent !== undefined);
      const plugin = join(pluginDir, 'nix');
      const pids = pidsRunning(plugin);
      assert.ok(pids.length >= 1, `no process runs ${plugin}`);
      const served = pids.filter((pid) => readFileSync(`/proc/${pid}/maps`, 'utf8').includes('pty.node'));
      assert.equal(served.length, 1, `one plugin process loaded pty.node: ${pids.join(' ')}`);
      const pid = served[0] ?? 0;
      assert.deepEqual(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'), [plugin, '']);
      assert.equal(Number(/^PPid:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]), agent.pid);
      const mapped = [
        ...new Set(
          readFileSync(`/proc/${pid}/maps`, 'utf8')
            .split('\n')
            .map((l) => l.split(/\s+/)[5] ?? '')
            .filter((p) => p.startsWith('/')),
        ),
      ];
      const addon = mapped.filter((p) => p.endsWith('pty.node'));
      assert.equal(addon.length, 1, mapped.join('\n'));
      assert.match(addon[0] ?? '', new RegExp(`^${agent.workDir}/nomad-driver-nix-0/${version.replaceAll('.', '\\.')}-[0-9a-f]{16}/pty\\.node$`));
      assert.deepEqual(
        mapped.filter((p) => p.startsWith(REPO_ROOT)),
        [],
      );
    });
  });
