/**
 * The error grammar over the source tree (errors.ts): every fix tells the operator what to do,
 * no structured error is rebuilt from its text, and every `internal` failure names a fix.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'gen' ? [] : sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** `file:line: text` of every source line matching `pattern`. */
function lines(pattern: RegExp): string[] {
  return sourceFiles(SRC).flatMap((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .flatMap((text, i) => (pattern.test(text) ? [`${relative(SRC, file)}:${i + 1}: ${text.trim()}`] : [])),
  );
}

describe('error grammar', () => {
  it('finds fix texts to check', () => {
    assert.ok(lines(/fix: ['"`]/).length > 50);
  });

  it('has no fix that is not one (nothing to do, or blaming the caller)', () => {
    assert.deepEqual(lines(/fix: ['"`](none needed|this is a bug|.*bug in the caller|the task cannot|.*; report it['"`])/i), []);
  });

  it('never rebuilds a structured error by splitting its text', () => {
    assert.deepEqual(lines(/split\(['"`];? ?fix: /), []);
  });

  it('gives every internal failure a fix', () => {
    assert.deepEqual(
      lines(/code: 'internal'(?!.*fix)/).filter((line) => !line.startsWith('errors.ts:')),
      [],
    );
  });
});
