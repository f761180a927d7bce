import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeTaskConfig } from '../config/task-config.js';
import { fhsLinks, resolveCommand, storePathProblem, taskEnvironment, validateTaskConfig, type CommandLookup } from './task-request.js';

const BB = '/nix/store/0c6a1r8ix1bqnpbrc3kljvvlfhd8h0cv-busybox';
const APP = '/nix/store/1d5qxwzrvkx6pjyk0gnaavz0cqnvzxq3-app';

describe('task config rules', () => {
  it('takes a closure_cache below local/ for store paths only', () => {
    assert.deepEqual(validateTaskConfig(decodeTaskConfig({ store_path: BB, closure_cache: 'local/closure' })), {
      storePath: BB,
      packages: [],
      closureCache: 'local/closure',
    });
    const fix =
      'set closure_cache to the artifact\'s destination below local/, e.g. "local/closure", and give the task a store_path, in the task\'s config { ... } block';
    assert.throws(() => validateTaskConfig(decodeTaskConfig({ flake: 'github:a/b#c', closure_cache: 'local/closure' })), {
      message: `failed to validate task config: closure_cache "local/closure" is set without store_path (a flake is built, not fetched); fix: ${fix}`,
    });
    assert.throws(() => validateTaskConfig(decodeTaskConfig({ store_path: BB, closure_cache: 'local/../secrets' })), {
      message: `failed to validate task config: closure_cache "local/../secrets" contains a ".." segment; fix: ${fix}`,
    });
    assert.throws(
      () => validateTaskConfig(decodeTaskConfig({ store_path: BB, closure_cache: 'secrets/c' })),
      /closure_cache "secrets\/c" is not below local\//,
    );
    assert.throws(() => validateTaskConfig(decodeTaskConfig({ store_path: BB, closure_cache: '/srv/c' })), /closure_cache "\/srv\/c" is absolute/);
  });

  it('wants exactly one of flake and store_path', () => {
    assert.throws(() => validateTaskConfig(decodeTaskConfig({})), {
      message:
        'failed to validate task config: neither flake nor store_path is set; fix: set exactly one of flake (a flake installable, e.g. "path:/srv/app#web") or store_path (e.g. "/nix/store/…-web") in the task\'s config { ... } block',
    });
    assert.throws(() => validateTaskConfig(decodeTaskConfig({ flake: 'path:/x#y', store_path: BB })), /both flake and store_path are set/);
    assert.deepEqual(validateTaskConfig(decodeTaskConfig({ store_path: BB })), { storePath: BB, packages: [] });
    assert.deepEqual(validateTaskConfig(decodeTaskConfig({ flake: 'path:/x#y', packages: [BB] })), { flake: 'path:/x#y', packages: [BB] });
  });

  it('accepts only top-level store paths', () => {
    assert.equal(storePathProblem(BB), undefined);
    assert.equal(storePathProblem('nix/store/x'), 'is not an absolute path');
    assert.equal(storePathProblem('/usr/bin'), 'is not in /nix/store');
    assert.equal(storePathProblem(`${BB}/bin/sh`), `is inside a store path, not a store path (use ${BB})`);
    assert.equal(storePathProblem('/nix/store/../../etc'), 'contains a ".." segment');
    assert.equal(storePathProblem('/nix/store/eeee-x'), 'is not a store path name (<32-char hash>-<name>)');
    assert.throws(() => validateTaskConfig(decodeTaskConfig({ store_path: BB, packages: ['/opt/x'] })), /packages\[0\] "\/opt\/x" is not in \/nix\/store/);
  });

  it('refuses a .drv as store_path or package: tasks name outputs, which are never built', () => {
    const drv = '/nix/store/0c6a1r8ix1bqnpbrc3kljvvlfhd8h0cv-busybox.drv';
    assert.equal(storePathProblem(drv), 'is a derivation (.drv), not an output path: the client would build it');
    assert.throws(() => validateTaskConfig(decodeTaskConfig({ store_path: drv })), {
      code: 'invalid_argument',
      message: `failed to validate task config: store_path "${drv}" is a derivation (.drv), not an output path: the client would build it; fix: set store_path to a store path such as "/nix/store/<hash>-<name>" in the task's config { ... } block`,
    });
    assert.throws(() => validateTaskConfig(decodeTaskConfig({ store_path: BB, packages: [drv] })), {
      message: `failed to validate task config: packages[0] "${drv}" is a derivation (.drv), not an output path: the client would build it; fix: list store paths such as "/nix/store/<hash>-<name>" in packages`,
    });
    assert.throws(() => validateTaskConfig(decodeTaskConfig({ store_path: '--query' })), /store_path "--query" is not an absolute path/);
  });

  it('refuses a flake that is not a flake installable, naming flake, the value and the fix', () => {
    assert.throws(() => validateTaskConfig(decodeTaskConfig({ flake: '--version' })), {
      code: 'invalid_argument',
      message:
        'failed to validate task config: flake "--version" starts with "-": Nix would read it as a command-line option, not a flake reference; fix: set flake to a flake installable such as "github:owner/repo#web", "git+https://example.org/repo#web", "nixpkgs#hello" or "path:/srv/app#web" under a directory listed in the client\'s allow_local_flakes, in the task\'s config { ... } block',
    });
    assert.throws(
      () => validateTaskConfig(decodeTaskConfig({ flake: '/srv/private/x#y' })),
      /^DriverError: failed to validate task config: flake "\/srv\/private\/x#y" is a bare path: /,
    );
  });

  it('refuses commands with ".." and relative work dirs', () => {
    assert.throws(
      () => validateTaskConfig(decodeTaskConfig({ store_path: BB, command: 'bin/../../../etc/x' })),
      /contains "\.\.", which would escape the closure/,
    );
    assert.throws(() => validateTaskConfig(decodeTaskConfig({ store_path: BB, work_dir: 'local' })), /work_dir "local" is not an absolute path/);
  });
});

describe('command resolution', () => {
  const files = new Map<string, string>([
    [`${APP}/bin/web`, `${APP}/libexec/web`],
    [`${APP}/libexec/web`, `${APP}/libexec/web`],
    [`${BB}/bin/sh`, `${BB}/bin/busybox`],
    [`${BB}/bin/busybox`, `${BB}/bin/busybox`],
    [`${APP}/bin/evil`, '/usr/bin/evil'],
  ]);
  const lookup: CommandLookup = {
    isExecutable: (p) => files.has(p),
    realPath: (p) => files.get(p),
    list: (dir) =>
      [...files.keys()]
        .filter((f) => f.startsWith(`${dir}/`))
        .map((f) => f.slice(dir.length + 1))
        .sort(),
  };
  const outputs = { mainOutput: APP, packageOutputs: [BB], closure: [APP, BB] };

  it('finds programs relative to the main output, by store path, or by name on PATH', () => {
    assert.equal(resolveCommand('bin/web', outputs, lookup), `${APP}/bin/web`);
    assert.equal(resolveCommand(`${BB}/bin/sh`, outputs, lookup), `${BB}/bin/sh`);
    assert.equal(resolveCommand('sh', outputs, lookup), `${BB}/bin/sh`);
  });

  it('refuses what lies outside the closure, even through a symlink', () => {
    assert.throws(() => resolveCommand('/usr/bin/env', outputs, lookup), /is \/usr\/bin\/env, outside the task's closure/);
    assert.throws(() => resolveCommand('bin/evil', outputs, lookup), /resolves to \/usr\/bin\/evil, outside the task's closure/);
    assert.throws(() => resolveCommand('nope', outputs, lookup), /command "nope" is not a program in/);
  });

  it('an empty command means the only program of the main output', () => {
    assert.throws(() => resolveCommand('', { ...outputs, mainOutput: BB }, lookup), /has 2 programs \(busybox, sh\)/);
    const single = { ...lookup, list: (dir: string) => (dir === `${APP}/bin` ? ['web'] : []) };
    assert.equal(resolveCommand('', outputs, single), `${APP}/bin/web`);
  });
});

describe('FHS links', () => {
  const COREUTILS = '/nix/store/2h4sxwzrvkx6pjyk0gnaavz0cqnvzxq3-coreutils';
  const files = new Map<string, string>([
    [`${APP}/bin/sh`, '/bin/dash'], // a link out of the closure: never linked
    [`${BB}/bin/sh`, `${BB}/bin/busybox`],
    [`${BB}/bin/env`, `${BB}/bin/busybox`],
    [`${COREUTILS}/bin/env`, `${COREUTILS}/bin/coreutils`],
  ]);
  const lookup = { isExecutable: (p: string) => files.has(p), realPath: (p: string) => files.get(p) };

  it('links /bin/sh and /usr/bin/env to the first sh and env on PATH that lie in the closure', () => {
    assert.deepEqual(fhsLinks(true, { mainOutput: APP, packageOutputs: [COREUTILS, BB], closure: [APP, BB, COREUTILS] }, lookup), [
      { path: '/bin/sh', linkTarget: `${BB}/bin/sh` },
      { path: '/usr/bin/env', linkTarget: `${COREUTILS}/bin/env` },
    ]);
  });

  it('links nothing the closure lacks, and nothing when fhs_links is false', () => {
    assert.deepEqual(fhsLinks(true, { mainOutput: APP, packageOutputs: [], closure: [APP, BB] }, lookup), []);
    assert.deepEqual(fhsLinks(true, { mainOutput: APP, packageOutputs: [COREUTILS], closure: [APP, COREUTILS] }, lookup), [
      { path: '/usr/bin/env', linkTarget: `${COREUTILS}/bin/env` },
    ]);
    assert.deepEqual(fhsLinks(false, { mainOutput: BB, packageOutputs: [], closure: [BB] }, lookup), []);
    assert.equal(decodeTaskConfig({ store_path: BB }).fhs_links, true);
  });
});

describe('task environment', () => {
  it("sets PATH, HOME, USER and LOGNAME; Nomad's variables and the job's env win", () => {
    const base = { path: `${APP}/bin:${BB}/bin`, userName: 'app', home: '/local' };
    assert.deepEqual(taskEnvironment(base, { NOMAD_TASK_DIR: '/local' }), {
      PATH: `${APP}/bin:${BB}/bin`,
      HOME: '/local',
      USER: 'app',
      LOGNAME: 'app',
      NOMAD_TASK_DIR: '/local',
    });
    assert.deepEqual(taskEnvironment(base, { HOME: '/alloc', USER: 'someone' }), {
      PATH: `${APP}/bin:${BB}/bin`,
      HOME: '/alloc',
      USER: 'someone',
      LOGNAME: 'app',
    });
  });
});
