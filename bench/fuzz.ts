/**
 * The fuzz run of test/fuzz.test.ts at scale: ≥ 10,000 StartTask / SetConfig / RecoverTask
 * inputs through the real plugin socket, several in flight at once; prints the counts per
 * outcome and per kind, the slowest answer, the plugin's RSS before and after, and what was
 * left behind.
 *
 *   npm run build && npm run bench:fuzz            (root; FUZZ_SEED, FUZZ_INPUTS=10000, FUZZ_CONCURRENCY=4)
 */
import { runFuzz } from '../test/support/fuzz.js';

const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const inputs = Number(process.env.FUZZ_INPUTS ?? 10_000);
const concurrency = Number(process.env.FUZZ_CONCURRENCY ?? 4);
const runtime = process.env.FUZZ_RUNTIME === 'runc' ? 'runc' : 'bwrap';

console.log(`fuzz: seed ${seed}, ${inputs} inputs, ${concurrency} in flight, runtime ${runtime}`);
const result = await runFuzz({
  seed,
  inputs,
  concurrency,
  runtime,
  startDeadlineMs: 120_000,
  deadlineMs: 20_000,
  onProgress: (done) => {
    if (done % 1000 === 0) console.log(`  ${done} answered`);
  },
});
const sorted = (record: Record<string, number>) => Object.entries(record).sort(([a], [b]) => a.localeCompare(b));
console.log('\nanswers per outcome:');
for (const [outcome, count] of sorted(result.outcomes)) console.log(`  ${outcome.padEnd(32)} ${count}`);
console.log('\ninputs per kind:');
for (const [kind, count] of sorted(result.kinds)) console.log(`  ${kind.padEnd(60)} ${count}`);
console.log(`
valid starts:      ${result.validStarts.started} of ${result.validStarts.sent} started${result.validStarts.failed.map((f) => `\n  failed ${f}`).join('')}
max answer time:   ${result.maxAnswerMs} ms (${result.slowest})
unanswered:        ${result.unanswered.length}${result.unanswered.map((u) => `\n  ${u}`).join('')}
INTERNAL statuses: ${result.internal.length}${result.internal.map((u) => `\n  ${u}`).join('')}
destroy errors:    ${result.destroyErrors.length}${result.destroyErrors.map((u) => `\n  ${u}`).join('')}
plugin RSS:        ${result.rssBeforeMb} MB before, ${result.rssAfterMb} MB after
plugin alive:      ${!result.pluginExited}, healthy: ${result.healthyAfter}
left behind:       ${result.leftovers.length === 0 ? 'nothing' : result.leftovers.join(', ')}
duration:          ${Math.round(result.durationMs / 1000)} s (seed ${seed})`);
process.exitCode = result.unanswered.length + result.internal.length + result.leftovers.length > 0 || result.pluginExited ? 1 : 0;
