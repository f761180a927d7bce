import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { quote, QUOTE_MAX_CHARS, truncate } from './errors.js';

describe('quote', () => {
  it('quotes short values whole', () => {
    assert.equal(quote('bin/web'), '"bin/web"');
    assert.equal(quote(['a', 1]), '["a",1]');
    assert.equal(quote(undefined), 'undefined');
    assert.equal(quote('x'.repeat(QUOTE_MAX_CHARS)), `"${'x'.repeat(200)}"`);
  });

  it('cuts a long string at 200 characters, with an ellipsis and its full length', () => {
    assert.equal(quote('x'.repeat(200_000)), `"${'x'.repeat(200)}…" (200000 characters)`);
  });

  it('cuts the JSON of a long object the same way', () => {
    const text = quote({ args: Array.from({ length: 1000 }, () => 'arg') });
    assert.equal(text, `${JSON.stringify({ args: Array.from({ length: 1000 }, () => 'arg') }).slice(0, 200)}… (6010 characters)`);
  });
});

describe('truncate', () => {
  it('never splits a surrogate pair', () => {
    assert.equal(truncate(`ab${'😀'.repeat(3)}`, 3), 'ab… (8 characters)');
  });
});
