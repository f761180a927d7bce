/**
 * Store paths for tests, made on this machine from /bin/busybox (statically linked) without any
 * network: no binary cache, no nixpkgs. Every Nix call passes `--option substituters ''`, since
 * otherwise Nix waits on retries to the default cache.
 *
 *   busyboxPath()            → /nix/store/…-busybox (bin/busybox + applet symlinks)
 *   buildWithBusybox(n, s)   → /nix/store/…-n, built by `busybox sh -c s`, busybox in its closure
 *   makeFlake(dir, attr, s)  → `path:<dir>#<attr>`, a flake without inputs building the same way
 *
 * The builder scripts run with `$out`, `$busybox` (the busybox store path) and
 * PATH=$busybox/bin. After the script, when `$out` is a directory without `.busybox`, a
 * `$out/.busybox` symlink to busybox is added so busybox is always in the output's closure.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The busybox binary the fixtures are made from. */
export const BUSYBOX_BINARY = '/bin/busybox';

/** Options every fixture's Nix command gets (no binary cache is reachable here). */
export const NO_SUBSTITUTERS = ['--option', 'substituters', ''] as const;

/** Applets linked next to busybox (each one only if this busybox has it). */
export const BUSYBOX_APPLETS = [
  'sh',
  'httpd',
  'nc',
  'sleep',
  'cat',
  'ls',
  'echo',
  'id',
  'tty',
  'env',
  'kill',
  'true',
  'false',
  'mkdir',
  'ln',
  'cp',
  'rm',
  'chmod',
  'printf',
  'test',
  'grep',
  'sed',
  'wget',
  'pwd',
  'touch',
  'wc',
  'head',
  'tail',
  'ps',
  'hostname',
  'whoami',
  'mount',
  'date',
  'stat',
] as const;

const run = (file: string, args: readonly string[]): string => {
  try {
    return execFileSync(file, [...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 }).trim();
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(`${file} ${args.join(' ')} failed: ${stderr}`, { cause: error });
  }
};

let applets: readonly string[] | undefined;
/** The applets of BUSYBOX_APPLETS that /bin/busybox provides (`busybox --list`). */
export function busyboxApplets(): readonly string[] {
  if (applets === undefined) {
    const available = new Set(run(BUSYBOX_BINARY, ['--list']).split('\n'));
    applets = BUSYBOX_APPLETS.filter((a) => available.has(a));
  }
  return applets;
}

/** Writes `<dir>/busybox/bin/{busybox,<applets>…}` and returns `<dir>/busybox`. */
export function writeBusyboxTree(dir: string): string {
  const root = join(dir, 'busybox');
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync(BUSYBOX_BINARY, join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o555);
  for (const applet of busyboxApplets()) symlinkSync('busybox', join(root, 'bin', applet));
  return root;
}

let busybox: string | undefined;
/** `/nix/store/…-busybox`, added with `nix-store --add` once per process (same path every time). */
export function busyboxPath(): string {
  if (busybox === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'nix-fixture-busybox-'));
    try {
      busybox = run('nix-store', ['--add', writeBusyboxTree(dir)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return busybox;
}

/** `text` as a Nix string literal. */
export function nixString(text: string): string {
  const escaped = text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$\{/g, '\\${').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t');
  return `"${escaped}"`;
}

/** The builder script: the caller's, then the busybox reference. */
export function builderScript(script: string): string {
  return `set -e\n${script}\nif [ -d "$out" ] && [ ! -e "$out/.busybox" ] && [ ! -L "$out/.busybox" ]; then ln -s "$busybox" "$out/.busybox"; fi\n`;
}

/** `derivation { … }` building `name` with `busybox sh -c script`, busybox given as a Nix expression. */
function derivationExpression(name: string, script: string, busyboxExpr: string, systemExpr: string): string {
  return `derivation {
    name = ${nixString(name)};
    system = ${systemExpr};
    busybox = ${busyboxExpr};
    builder = "\${${busyboxExpr}}/bin/busybox";
    args = [ "sh" "-c" ${nixString(builderScript(script))} ];
    PATH = "\${${busyboxExpr}}/bin";
  }`;
}

/**
 * Builds a derivation named `name` whose builder runs `script` with busybox's sh and returns
 * its output path. Same name and script give the same path (built once).
 */
export function buildWithBusybox(name: string, script: string): string {
  const expr = `let bb = builtins.storePath ${nixString(busyboxPath())}; in ${derivationExpression(name, script, 'bb', 'builtins.currentSystem')}`;
  return (
    run('nix-build', ['--no-out-link', ...NO_SUBSTITUTERS, '-E', expr])
      .split('\n')
      .pop() ?? ''
  );
}

let system: string | undefined;
/** Nix's name for this machine's platform, e.g. `x86_64-linux`. */
export function currentSystem(): string {
  system ??= JSON.parse(run('nix-instantiate', ['--eval', '-E', 'builtins.currentSystem'])) as string;
  return system;
}

/**
 * Writes `dir/flake.nix` (no inputs) with `packages.<system>.<attr>` built by `script`, and
 * `dir/busybox` (referenced as `./busybox`: pure flake evaluation refuses builtins.storePath).
 * Returns the installable `path:<dir>#<attr>`.
 */
export function makeFlake(dir: string, attr: string, script: string): string {
  mkdirSync(dir, { recursive: true });
  rmSync(join(dir, 'busybox'), { recursive: true, force: true });
  writeBusyboxTree(dir);
  const sys = currentSystem();
  writeFileSync(
    join(dir, 'flake.nix'),
    `{
  description = "nomad-driver-nix test fixture";
  outputs = { self }: {
    packages.${nixString(sys)}.${nixString(attr)} = ${derivationExpression(attr, script, './busybox', nixString(sys))};
  };
}
`,
  );
  return `path:${dir}#${attr}`;
}
