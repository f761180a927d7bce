/** The README's option tables are rendered from the config schema and must match it. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { renderReadmeTables } from '../src/config/render-docs.js';
import { inputLimitRows } from '../src/config/input-limits.js';

const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

describe('README', () => {
  it('documents every plugin and task option exactly as the schema declares it', () => {
    assert.equal(renderReadmeTables(readme), readme, 'run: node scripts/render-options.mjs');
  });

  it('starts with the two set-up commands, and .ci/run calls the test command', () => {
    const commands = [...readme.matchAll(/^```(?:sh|bash)\n([^`]+?)\n```/gm)].map((m) => m[1]?.trim());
    assert.equal(commands[0], './scripts/demo.sh');
    assert.equal(commands[1], './scripts/test.sh');
    const ci = readFileSync(fileURLToPath(new URL('../../.ci/run', import.meta.url)), 'utf8');
    assert.match(ci, /\.\/scripts\/test\.sh/);
  });

  it('lists the input limits the edge enforces (src/config/input-limits.ts), each as a row', () => {
    for (const row of inputLimitRows()) assert.ok(readme.includes(`${row}\n`), `README lacks the row: ${row}`);
  });
});
