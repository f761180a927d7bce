/**
 * Prints how long the plugin takes from exec to its handshake line, and its resident memory
 * when idle (after an open Fingerprint stream, as under a Nomad agent, 2 s after the
 * handshake), for each form of the plugin executable, next to the anchors `node -e 0` (exec to
 * exit) and an idle bare node process:
 * - launcher: build/plugins/nix of `npm run build`, a shell script that execs this machine's
 *   node on dist/src/main.js (needs the checkout and node_modules);
 * - single file: build/release/nix of `npm run package`, node with the bundled plugin injected
 *   as a single-executable application. Its first start in a fresh TMPDIR unpacks the .proto
 *   files, pty.node and nix-exec (reported apart); later starts find them unpacked.
 *   npm run build [&& npm run package] && node dist/bench/plugin-startup.js [runs]
 * The figures handed to `npm run bench` (bench/figures.ts) are the single file's when it was
 * packaged (that is what an operator installs), else the launcher's.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { PLUGIN_LAUNCHER, startPlugin } from '../test/support/plugin-process.js';
import { median, reportFigure } from './figures.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SINGLE_FILE = join(ROOT, 'build', 'release', 'nix');

function rssKiBOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** The anchors: exec of `node -e 0` to its exit, and the RSS of an idle bare node process. */
async function bareNode(runs: number): Promise<{ execMs: number; rssKiB: number }> {
  const times: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const t0 = performance.now();
    spawnSync(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    times.push(performance.now() - t0);
  }
  // measured once it has run its script and settled, as the plugin is (2 s after its handshake)
  const idle = spawn(process.execPath, ['-e', 'console.log("ready"); setTimeout(() => undefined, 60_000)'], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise((r) => idle.stdout?.once('data', r));
  await new Promise((r) => setTimeout(r, 2_000));
  const rssKiB = rssKiBOf(idle.pid ?? 0);
  idle.kill('SIGKILL');
  return { execMs: median(times), rssKiB };
}

/** One start: exec → handshake line (ms), and the idle RSS (KiB). */
async function once(executable: string, env: Record<string, string>): Promise<{ startup: number; rss: number }> {
  const started = performance.now();
  const plugin = await startPlugin({ argv: [executable], env });
  const startup = performance.now() - started;
  const fingerprints = plugin.clients.driver.Fingerprint({});
  fingerprints.on('data', () => undefined);
  fingerprints.on('error', () => undefined);
  await new Promise((r) => setTimeout(r, 2_000));
  const rss = rssKiBOf(plugin.child.pid ?? 0);
  fingerprints.cancel();
  plugin.kill('SIGTERM');
  await plugin.exited;
  return { startup, rss };
}

const row = (label: string, values: number[], digits: number) =>
  `| ${label} | ${percentile(values, 50).toFixed(digits)} | ${percentile(values, 90).toFixed(digits)} | ${Math.max(...values).toFixed(digits)} |`;

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 10);
  const tmp = mkdtempSync(join(tmpdir(), 'plugin-startup-'));
  try {
    const forms: [string, string][] = [['launcher', PLUGIN_LAUNCHER]];
    if (existsSync(SINGLE_FILE)) forms.push(['single file', SINGLE_FILE]);
    else console.log(`(no ${SINGLE_FILE}: run npm run package to measure the single-file plugin too)`);
    const env = { TMPDIR: tmp };
    let firstStart: number | undefined;
    if (existsSync(SINGLE_FILE)) firstStart = (await once(SINGLE_FILE, env)).startup; // unpacks into the fresh TMPDIR
    const bare = await bareNode(runs);
    // interleaved, so a change in the machine's load hits both forms alike
    const startups = forms.map((): number[] => []);
    const rss = forms.map((): number[] => []);
    for (let i = 0; i < runs; i += 1) {
      for (const [index, [, executable]] of forms.entries()) {
        const result = await once(executable, env);
        startups[index]?.push(result.startup);
        rss[index]?.push(result.rss / 1024);
      }
    }
    const reported = forms.length - 1;
    const label = forms[reported]?.[0] ?? 'launcher';
    reportFigure({
      figure: `plugin start to handshake line (${label})`,
      value: median(startups[reported] ?? []),
      unit: 'ms',
      anchor: '`node -e 0`, exec to exit',
      anchorValue: bare.execMs,
      maxValue: 100,
    });
    reportFigure({
      figure: `plugin RSS, idle (${label})`,
      value: median(rss[reported] ?? []),
      unit: 'MiB',
      anchor: 'bare idle node',
      anchorValue: bare.rssKiB / 1024,
      maxValue: 60,
    });
    console.log(
      `plugin exec to handshake line and idle RSS, ${runs} runs each (node ${process.version}); \`node -e 0\` ${bare.execMs.toFixed(0)} ms, bare node RSS ${(bare.rssKiB / 1024).toFixed(1)} MiB`,
    );
    console.log('| form, metric | p50 | p90 | max |');
    console.log('|---|---|---|---|');
    for (const [index, [name]] of forms.entries()) {
      console.log(row(`${name}: exec → handshake (ms)`, startups[index] ?? [], 0));
      console.log(row(`${name}: idle RSS (MiB)`, rss[index] ?? [], 1));
    }
    if (firstStart !== undefined) console.log(`single file, first start in a fresh TMPDIR (unpacks its files): ${firstStart.toFixed(0)} ms`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

void main();
