/**
 * `npm run bench` (root): every bench of issue 16 in turn, then one table of its figures,
 * each next to its anchor measured in the same run, with the ratio and the goal.
 *
 *   npm run build && npm run bench                       (all parts)
 *   BENCH_PARTS=start,view npm run bench                 (some parts)
 *
 * Parts (each also runs alone, with its own detailed output):
 *   startup  bench/plugin-startup.js 5          plugin exec → handshake, idle RSS (npm run bench:startup)
 *   start    bench/start-latency.js 10 2000     warm start vs raw bwrap / raw runc (npm run bench:start)
 *   stats    bench/stats-overhead.js            stats CPU at 50 and at 200 tasks, RSS with 200 (npm run bench:stats)
 *   view     bench/store-view.js                cold store view vs `cp -al`, a second closure (npm run bench:view)
 *   agent    bench/agent-start.js               job to running through one Nomad agent (npm run bench:agent)
 * The parts' own output goes to stderr; the table (markdown) to stdout.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Figure } from './figures.js';

interface Part {
  readonly name: string;
  readonly script: string;
  readonly args: readonly string[];
  readonly env?: Record<string, string>;
}

const PARTS: readonly Part[] = [
  { name: 'startup', script: 'plugin-startup.js', args: ['5'] },
  { name: 'start', script: 'start-latency.js', args: ['10', '2000'] },
  { name: 'stats', script: 'stats-overhead.js', args: [], env: { BENCH_RUNTIMES: 'bwrap', BENCH_TASKS: '50', BENCH_WINDOW_S: '20', BENCH_WARMUP_S: '3' } },
  { name: 'stats', script: 'stats-overhead.js', args: [], env: { BENCH_RUNTIMES: 'bwrap', BENCH_TASKS: '200', BENCH_WINDOW_S: '20', BENCH_WARMUP_S: '3' } },
  { name: 'view', script: 'store-view.js', args: ['3'], env: { BENCH_VIEW_SIZES: '2000' } },
  { name: 'agent', script: 'agent-start.js', args: ['5'] },
];

const fmt = (n: number | null) => (n === null || !Number.isFinite(n) ? '–' : n >= 100 ? n.toFixed(0) : n.toFixed(n >= 10 ? 1 : 2));

function row(f: Figure): string {
  const value = f.value as number | null;
  const anchor = f.anchorValue as number | null;
  const ratio = value !== null && anchor !== null && anchor > 0 ? value / anchor : Number.NaN;
  const goal = f.maxRatio !== undefined ? `≤ ${f.maxRatio}×` : f.maxValue !== undefined ? `≤ ${f.maxValue} ${f.unit}` : '–';
  const met =
    value === null || !Number.isFinite(value)
      ? '–'
      : f.maxRatio !== undefined
        ? ratio <= f.maxRatio
          ? 'yes'
          : 'no'
        : f.maxValue !== undefined
          ? value <= f.maxValue
            ? 'yes'
            : 'no'
          : '–';
  return `| ${f.figure} | ${fmt(value)} ${f.unit} | ${f.anchor}: ${fmt(anchor)} ${f.unit} | ${Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '–'} | ${goal} | ${met} |`;
}

function main(): void {
  const wanted = (process.env.BENCH_PARTS ?? PARTS.map((p) => p.name).join(',')).split(',');
  const dir = mkdtempSync(join(tmpdir(), 'bench-figures-'));
  const file = join(dir, 'figures.jsonl');
  const failed: string[] = [];
  try {
    for (const part of PARTS.filter((p) => wanted.includes(p.name))) {
      const script = fileURLToPath(new URL(part.script, import.meta.url));
      process.stderr.write(`\n== ${part.name}: ${part.script} ${part.args.join(' ')} ${JSON.stringify(part.env ?? {})}\n`);
      const result = spawnSync(process.execPath, [script, ...part.args], {
        stdio: ['ignore', process.stderr, process.stderr],
        env: { ...process.env, ...part.env, BENCH_FIGURES: file },
      });
      if (result.status !== 0) failed.push(`${part.script} ${JSON.stringify(part.env ?? {})} exited ${result.status ?? result.signal}`);
    }
    let figures: Figure[] = [];
    try {
      figures = readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Figure);
    } catch {
      // no part reported anything
    }
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(
      `${new Date().toISOString().slice(0, 16)}Z, ${cpus().length} × ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, load average at the end ${load}`,
    );
    console.log('');
    console.log('| figure | value | anchor (same run) | ratio | goal | met? |');
    console.log('|---|---|---|---|---|---|');
    for (const f of figures) console.log(row(f));
    for (const f of failed) console.log(`\nfailed: ${f}`);
    if (failed.length > 0) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
