/**
 * Prints how long the plugin takes from exec to its handshake line, and its resident memory
 * when idle (an open Fingerprint stream, as under a Nomad agent, 2 s after the handshake), for
 * each form of the plugin executable:
 * - launcher: build/plugins/nix of `npm run build`, a shell script that execs this machine's
 *   node on dist/src/main.js (needs the checkout and node_modules);
 * - single file: build/release/nix of `npm run package`, node with the bundled plugin injected
 *   as a single-executable application. Its first start in a fresh TMPDIR unpacks the .proto
 *   files, pty.node and nix-exec (reported apart); later starts find them unpacked.
 *   npm run package && node dist/bench/plugin-startup.js [runs]
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startPlugin } from '../test/support/plugin-process.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LAUNCHER = join(ROOT, 'build', 'plugins', 'nix');
const SINGLE_FILE = join(ROOT, 'build', 'release', 'nix');

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
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
  const rss = rssKiB(plugin.child.pid ?? 0);
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
    const forms: [string, string][] = [['launcher', LAUNCHER]];
    if (existsSync(SINGLE_FILE)) forms.push(['single file', SINGLE_FILE]);
    else console.log(`(no ${SINGLE_FILE}: run npm run package to measure the single-file plugin too)`);
    const env = { TMPDIR: tmp };
    let firstStart: number | undefined;
    if (existsSync(SINGLE_FILE)) firstStart = (await once(SINGLE_FILE, env)).startup; // unpacks into the fresh TMPDIR
    console.log(`plugin exec to handshake line and idle RSS, ${runs} runs each (node ${process.version})`);
    console.log('| form, metric | p50 | p90 | max |');
    console.log('|---|---|---|---|');
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
    for (const [index, [label]] of forms.entries()) {
      console.log(row(`${label}: exec → handshake (ms)`, startups[index] ?? [], 0));
      console.log(row(`${label}: idle RSS (MiB)`, rss[index] ?? [], 1));
    }
    if (firstStart !== undefined) console.log(`single file, first start in a fresh TMPDIR (unpacks its files): ${firstStart.toFixed(0)} ms`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

void main();
