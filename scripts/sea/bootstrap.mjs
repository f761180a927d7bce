// First module of the single-file plugin (scripts/package.mjs bundles it before dist/src/main.js).
// It runs inside the Node single-executable application, before any plugin module, and unpacks
// the files the plugin opens by path from the SEA's assets: node-pty's pty.node (process.dlopen
// needs a file) and the static nix-exec helper (passed to bubblewrap tasks as a file
// descriptor). They go to a private directory
//   ${TMPDIR:-/tmp}/nomad-driver-nix-<euid>/<content hash>/
// laid out like a checkout (dist/native/nix-exec, pty.node), so the plugin's modules,
// whose import.meta.url package.mjs rewrites to a path below it, find them as they do in a build.
// The parent is created 0700 and must be ours and private (anyone may create names in /tmp); a
// version is unpacked once, into a temporary directory renamed into place, so a directory that
// exists is complete. Versions are never removed: an older plugin still running uses its own.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { getAsset } from 'node:sea';
import { pathToFileURL } from 'node:url';

function fail(object, cause, fix) {
  const message = `failed to unpack ${object}: ${cause}; fix: ${fix}`;
  process.stderr.write(`${JSON.stringify({ '@level': 'error', '@message': message, '@module': 'nix' })}\n`);
  process.exit(1);
}

function unpack() {
  const manifest = JSON.parse(getAsset('manifest.json', 'utf8'));
  const euid = process.geteuid();
  const tmp = process.env.TMPDIR?.startsWith('/') ? process.env.TMPDIR : '/tmp';
  const base = join(tmp, `nomad-driver-nix-${euid}`);
  const fix = `remove ${JSON.stringify(base)} or point TMPDIR at a directory of the agent's own (in the agent's environment: Environment=TMPDIR=… in its systemd unit)`;
  try {
    mkdirSync(base, { mode: 0o700 });
  } catch (error) {
    if (error.code !== 'EEXIST') fail("the plugin's files", `cannot create ${JSON.stringify(base)}: ${error.message}`, fix);
  }
  const stat = lstatSync(base);
  if (!stat.isDirectory() || stat.uid !== euid || (stat.mode & 0o077) !== 0)
    fail(
      "the plugin's files",
      `${JSON.stringify(base)} is not a private directory of uid ${euid} (found ${stat.isSymbolicLink() ? 'a symbolic link' : `mode ${(stat.mode & 0o7777).toString(8)}, owner ${stat.uid}`})`,
      fix,
    );
  const root = join(base, manifest.hash);
  if (existsSync(join(root, '.complete'))) return root;
  let staging;
  try {
    staging = mkdtempSync(join(base, '.tmp-'));
    for (const file of manifest.files) {
      const bytes = Buffer.from(getAsset(file.key));
      if (createHash('sha256').update(bytes).digest('hex') !== file.sha256) throw new Error(`asset ${file.key} does not match its checksum`);
      const path = join(staging, file.path);
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, bytes, { mode: file.mode });
      chmodSync(path, file.mode);
    }
    writeFileSync(join(staging, '.complete'), '');
    renameSync(staging, root);
  } catch (error) {
    if (staging !== undefined) rmSync(staging, { recursive: true, force: true });
    // another instance of this version (Nomad starts several at once) renamed its copy first
    if (existsSync(join(root, '.complete'))) return root;
    fail("the plugin's files", `cannot write them below ${JSON.stringify(base)}: ${error.message}`, fix);
  }
  return root;
}

const root = unpack();
/** import.meta.url of a plugin module at `relative` (e.g. "dist/src/rpc/proto.js"), as in a checkout at root. */
globalThis.__nomadDriverNixModuleUrl = (relative) => pathToFileURL(join(root, relative)).href;
/** The unpacked node-pty addon. */
globalThis.__nomadDriverNixPtyAddon = join(root, 'pty.node');
