/**
 * Prints how long the plugin takes from exec of its launcher (build/plugins/nix, what Nomad
 * runs) to its handshake line, next to exec of `node -e 0` to its exit, and its resident memory
 * when idle (after a SetConfig and an open Fingerprint stream, as under a Nomad agent).
 *   npm run build && node dist/bench/plugin-startup.js [runs]
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { spawn, spawnSync } from 'node:child_process';
import { PLUGIN_LAUNCHER, startPlugin } from '../test/support/plugin-process.js';
import { median, reportFigure } from './figures.js';

function rssKiBOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
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

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 10);
  const startups: number[] = [];
  const rss: number[] = [];
  const bare = await bareNode(runs);
  for (let i = 0; i < runs; i += 1) {
    const started = performance.now();
    const plugin = await startPlugin({ executable: PLUGIN_LAUNCHER });
    startups.push(performance.now() - started);
    const fingerprints = plugin.clients.driver.Fingerprint({});
    fingerprints.on('data', () => undefined);
    fingerprints.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 2_000));
    rss.push(rssKiBOf(plugin.child.pid ?? 0));
    fingerprints.cancel();
    plugin.kill('SIGTERM');
    await plugin.exited;
  }
  reportFigure({
    figure: 'plugin start to handshake line',
    value: median(startups),
    unit: 'ms',
    anchor: '`node -e 0`, exec to exit',
    anchorValue: bare.execMs,
    maxValue: 100,
  });
  reportFigure({ figure: 'plugin RSS, idle', value: median(rss) / 1024, unit: 'MiB', anchor: 'bare idle node', anchorValue: bare.rssKiB / 1024, maxValue: 60 });
  console.log(
    `plugin start to handshake line, ${runs} runs (node ${process.version}); \`node -e 0\` ${bare.execMs.toFixed(0)} ms, bare node RSS ${(bare.rssKiB / 1024).toFixed(1)} MiB`,
  );
  console.log('| metric | p50 | p90 | max |');
  console.log('|---|---|---|---|');
  console.log(
    `| exec → handshake (ms) | ${percentile(startups, 50).toFixed(0)} | ${percentile(startups, 90).toFixed(0)} | ${Math.max(...startups).toFixed(0)} |`,
  );
  console.log(
    `| idle RSS (MiB) | ${(percentile(rss, 50) / 1024).toFixed(1)} | ${(percentile(rss, 90) / 1024).toFixed(1)} | ${(Math.max(...rss) / 1024).toFixed(1)} |`,
  );
}

void main();
