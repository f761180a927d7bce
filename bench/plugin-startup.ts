/**
 * Prints how long the plugin takes from exec to its handshake line, and its resident memory
 * when idle (after a SetConfig and an open Fingerprint stream, as under a Nomad agent).
 *   npm run build && node dist/bench/plugin-startup.js [runs]
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { startPlugin } from '../test/support/plugin-process.js';

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 10);
  const startups: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const started = performance.now();
    const plugin = await startPlugin();
    startups.push(performance.now() - started);
    const fingerprints = plugin.clients.driver.Fingerprint({});
    fingerprints.on('data', () => undefined);
    fingerprints.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 2_000));
    rss.push(rssKiB(plugin.child.pid ?? 0));
    fingerprints.cancel();
    plugin.kill('SIGTERM');
    await plugin.exited;
  }
  console.log(`plugin start to handshake line, ${runs} runs (node ${process.version})`);
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
