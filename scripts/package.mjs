#!/usr/bin/env node
// Writes the single-file plugin and its release tarball (README "Install"):
//   build/release/nix                                            the plugin: one executable
//   build/release/nomad-driver-nix-<version>-linux-<arch>.tar.gz  nix, install-service.sh, nix.hcl
//   build/release/SHA256SUMS                                      sha256sum -c format
// `nix` is a copy of this machine's node with the plugin injected as a Node single-executable
// application (SEA): esbuild bundles dist/src/main.js (run `npm run build` first; `npm run
// package` does both) and its dependencies into one CommonJS script, and the SEA carries the
// files the plugin opens by path as assets, which scripts/sea/bootstrap.mjs unpacks at start:
// node-pty's pty.node and dist/native/nix-exec. msgpackr's optional native
// decoder (msgpackr-extract) is left out: msgpackr falls back to its JavaScript one.
// The executable is node itself, so the plugin's pid is the one Nomad started (go-plugin
// signals and reaps it) and its handshake line is the first line on stdout.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = process.env.NOMAD_DRIVER_NIX_RELEASE_DIR ?? join(root, 'build', 'release');
const work = join(out, '.work');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch] ?? process.arch;

function die(message) {
  console.error(`error: ${message}`);
  process.exit(1);
}

const main = join(root, 'dist', 'src', 'main.js');
const helper = join(root, 'dist', 'native', 'nix-exec');
const ptyAddon = join(root, 'node_modules', 'node-pty', 'build', 'Release', 'pty.node');
for (const [path, fix] of [
  [main, 'run npm run build first'],
  [helper, 'install gcc and the static libc (Debian: apt-get install gcc libc6-dev) and run npm run build'],
  [ptyAddon, 'run npm install (it compiles node-pty)'],
]) {
  if (!existsSync(path)) die(`failed to package the plugin: ${path} is missing; fix: ${fix}`);
}

// The node that becomes the plugin: this one, or NOMAD_DRIVER_NIX_SEA_NODE (20.12 or newer,
// for SEA assets; it also writes the blob, and node-pty's addon must fit its ABI: same major). It must carry the SEA fuse itself: nodejs.org's and NodeSource's
// builds do; Debian's nodejs is a small executable linking libnode.so, which cannot.
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const seaNode = process.env.NOMAD_DRIVER_NIX_SEA_NODE ?? process.execPath;
if (!readFileSync(seaNode).includes(FUSE))
  die(
    `failed to package the plugin: ${seaNode} is not a node that can become a single executable (no ${FUSE} in it; Debian's nodejs keeps node in libnode.so); fix: install node from nodejs.org or NodeSource and run with it, or point NOMAD_DRIVER_NIX_SEA_NODE at one (the same major version)`,
  );

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
mkdirSync(out, { recursive: true });

// 1. the bundle
const distSrc = join(root, 'dist', 'src');
await build({
  entryPoints: [join(root, 'scripts', 'sea', 'entry.mjs')],
  outfile: join(work, 'plugin.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  logLevel: 'warning',
  // node-pty's loader require()s build/Release/pty.node by a computed path, which a SEA's
  // require (built-in modules only) cannot load: load the unpacked copy with process.dlopen.
  logOverride: { 'unsupported-require-call': 'silent' },
  plugins: [
    {
      name: 'nomad-driver-nix-sea',
      setup(b) {
        // msgpackr require()s its optional native decoder in a try block: make that require
        // throw inside the bundle (a SEA's require would also print a warning on stderr).
        b.onResolve({ filter: /^msgpackr-extract$/ }, () => ({ path: 'msgpackr-extract', namespace: 'left-out' }));
        b.onLoad({ filter: /.*/, namespace: 'left-out' }, () => ({
          contents: "throw new Error('msgpackr-extract is left out of the single-file plugin: msgpackr uses its JavaScript decoder');",
          loader: 'js',
        }));
        // The plugin's modules find proto/ and dist/native/ relative to import.meta.url, which
        // a CommonJS bundle has not: give each its path in the unpacked tree.
        b.onLoad({ filter: /\.js$/ }, (args) => {
          if (!args.path.startsWith(`${distSrc}/`)) return undefined;
          const text = readFileSync(args.path, 'utf8');
          if (!text.includes('import.meta.url')) return undefined;
          const rel = relative(root, args.path);
          return { contents: text.replaceAll('import.meta.url', `globalThis.__nomadDriverNixModuleUrl(${JSON.stringify(rel)})`), loader: 'js' };
        });
        b.onLoad({ filter: /node-pty[/\\]lib[/\\]utils\.js$/ }, (args) => ({
          contents: `${readFileSync(args.path, 'utf8')}
exports.loadNativeModule = function (name) {
  if (name !== 'pty') throw new Error('the single-file plugin carries only pty.node, not ' + name + '.node');
  var m = { exports: {} };
  process.dlopen(m, globalThis.__nomadDriverNixPtyAddon);
  return { dir: require('node:path').dirname(globalThis.__nomadDriverNixPtyAddon), module: m.exports };
};
`,
          loader: 'js',
        }));
      },
    },
  ],
});

// 2. the assets and their manifest
// (no .proto files: the plugin builds its gRPC definitions from the descriptor npm run gen
// compiles into the bundle, src/gen/descriptor.ts)
const files = [];
files.push({ source: helper, path: 'dist/native/nix-exec', mode: 0o755 });
files.push({ source: ptyAddon, path: 'pty.node', mode: 0o755 });
const tree = createHash('sha256');
const manifest = {
  files: files.map((f) => {
    const bytes = readFileSync(f.source);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    tree.update(`${f.path}\0${f.mode}\0${sha256}\0`);
    return { key: f.path, path: f.path, mode: f.mode, sha256 };
  }),
};
manifest.hash = `${version}-${tree.digest('hex').slice(0, 16)}`;
writeFileSync(join(work, 'manifest.json'), JSON.stringify(manifest));
const assets = Object.fromEntries([['manifest.json', join(work, 'manifest.json')], ...files.map((f) => [f.path, f.source])]);
writeFileSync(
  join(work, 'sea-config.json'),
  JSON.stringify(
    { main: join(work, 'plugin.cjs'), output: join(work, 'sea-prep.blob'), disableExperimentalSEAWarning: true, useCodeCache: true, assets },
    null,
    2,
  ),
);

// 3. the executable: node with the blob injected
const run = (file, args) => {
  const result = spawnSync(file, args, { stdio: 'inherit', cwd: work });
  if (result.status !== 0) die(`failed to run ${file} ${args.join(' ')}: ${result.error?.message ?? `exit ${result.status}`}`);
};
run(seaNode, ['--experimental-sea-config', join(work, 'sea-config.json')]);
const exe = join(work, 'nix');
copyFileSync(seaNode, exe);
chmodSync(exe, 0o755);
run(process.execPath, [join(root, 'node_modules', 'postject', 'dist', 'cli.js'), exe, 'NODE_SEA_BLOB', join(work, 'sea-prep.blob'), '--sentinel-fuse', FUSE]);
renameSync(exe, join(out, 'nix'));
console.log(`single-file plugin: ${join(out, 'nix')} (${(statSync(join(out, 'nix')).size / 2 ** 20).toFixed(1)} MiB)`);

// 4. the release tarball and its checksum
const name = `nomad-driver-nix-${version}-linux-${arch}`;
const stage = join(work, name);
mkdirSync(stage);
copyFileSync(join(out, 'nix'), join(stage, 'nix'));
copyFileSync(join(root, 'scripts', 'install-service.sh'), join(stage, 'install-service.sh'));
copyFileSync(join(root, 'plugin-config', 'nix.hcl'), join(stage, 'nix.hcl'));
chmodSync(join(stage, 'nix'), 0o755);
chmodSync(join(stage, 'install-service.sh'), 0o755);
chmodSync(join(stage, 'nix.hcl'), 0o644);
const tarball = `${name}.tar.gz`;
run('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-czf', join(out, tarball), '-C', work, name]);
const sum = createHash('sha256')
  .update(readFileSync(join(out, tarball)))
  .digest('hex');
writeFileSync(join(out, 'SHA256SUMS'), `${sum}  ${tarball}\n`);
rmSync(work, { recursive: true, force: true });
console.log(`release: ${join(out, tarball)}\nchecksums: ${join(out, 'SHA256SUMS')}`);
