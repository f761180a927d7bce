import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hclogLineProblems } from '../../test/support/hclog-rules.js';
import { formatTimestamp, sanitizeFields, toHclogLevel } from './hclog-format.js';
import { createLogger, levelFromEnv } from './logger.js';

function capture(level: 'trace' | 'info' = 'trace') {
  const lines: string[] = [];
  const logger = createLogger({ module: 'nix', level, sink: (line) => lines.push(line) });
  return { logger, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('hclog format', () => {
  it('formats timestamps with exactly six fractional digits in UTC', () => {
    assert.equal(formatTimestamp(Date.UTC(2026, 10, 22, 8, 30, 0, 123) * 1000 + 456), '2026-11-22T08:30:00.123456Z');
    assert.equal(formatTimestamp(Date.UTC(2026, 0, 1) * 1000 + 7), '2026-01-01T00:00:00.000007Z');
  });

  it('maps pino levels to hclog names (no fatal, no warning)', () => {
    assert.equal(toHclogLevel('fatal'), 'error');
    assert.equal(toHclogLevel('warn'), 'warn');
  });

  it('turns non-string @-keys into strings', () => {
    assert.deepEqual(sanitizeFields({ '@module': 5, '@x': { a: 1 }, plain: 2 }), { '@module': '5', '@x': '{"a":1}', plain: 2 });
  });
});

describe('logger', () => {
  it('writes lines the Nomad agent parses, with module, message and fields', () => {
    const { logger, lines, parsed } = capture();
    logger.info('plugin started', { pid: 42 });
    logger.child({ '@module': 'nix.driver', task_id: 't1' }).warn('something odd', { err: 'boom' });
    logger.child({ '@module': 'nix.driver' }).child({ '@module': 'nix.driver.task' }).debug('nested');
    for (const line of lines) assert.deepEqual(hclogLineProblems(line), [], line);
    const [first, second, third] = parsed();
    assert.deepEqual(
      { ...first, '@timestamp': undefined },
      { '@level': 'info', '@timestamp': undefined, '@module': 'nix', pid: 42, '@message': 'plugin started' },
    );
    assert.equal(second?.['@module'], 'nix.driver');
    assert.equal(second?.task_id, 't1');
    assert.equal(second?.err, 'boom');
    assert.equal(third?.['@module'], 'nix.driver.task');
    assert.equal((lines[2]?.match(/"@module"/g) ?? []).length, 1, '@module appears once');
  });

  it('filters by a level shared with every child, changeable at run time', () => {
    const { logger, parsed } = capture('info');
    const child = logger.child({ '@module': 'nix.x' });
    child.debug('hidden');
    child.info('shown');
    logger.setLevel('debug');
    child.debug('now shown');
    assert.deepEqual(
      parsed().map((e) => e['@message']),
      ['shown', 'now shown'],
    );
  });

  it('never lets a field make an @-key a non-string', () => {
    const { logger, lines } = capture();
    logger.info('x', { '@timestamp': 5 as unknown as string, '@level': { bad: true } });
    for (const line of lines) assert.deepEqual(hclogLineProblems(line), [], line);
  });

  it('bounds every line: long messages, string fields, object fields and the number of fields', () => {
    const { logger, lines, parsed } = capture();
    const many: Record<string, string> = {};
    for (let i = 0; i < 40; i += 1) many[`f${String(i).padStart(2, '0')}`] = 'v';
    logger.warn('m'.repeat(3000), { err: 'e'.repeat(16 * 1024 * 1024), plan: { args: Array.from({ length: 1000 }, () => 'arg') } });
    logger.info('many', many);
    for (const line of lines) assert.deepEqual(hclogLineProblems(line), [], line.slice(0, 200));
    const [first, second] = parsed();
    assert.equal(first?.['@message'], `${'m'.repeat(2048)}… (3000 characters)`);
    assert.equal(first?.err, `${'e'.repeat(2048)}… (16777216 characters)`);
    assert.equal(first?.plan, `${JSON.stringify({ args: Array.from({ length: 1000 }, () => 'arg') }).slice(0, 2048)}… (6010 characters)`);
    assert.ok((lines[0]?.length ?? 0) < 7000, `line of ${lines[0]?.length} characters`);
    assert.deepEqual(
      Object.keys(second ?? {}).filter((k) => k.startsWith('f')),
      [...Object.keys(many).slice(0, 24), 'fields_dropped'],
    );
    assert.equal(second?.fields_dropped, 16);
  });

  it('takes the initial level from NOMAD_DRIVER_NIX_LOG_LEVEL', () => {
    assert.equal(levelFromEnv({ NOMAD_DRIVER_NIX_LOG_LEVEL: 'TRACE' }, 'info'), 'trace');
    assert.equal(levelFromEnv({ NOMAD_DRIVER_NIX_LOG_LEVEL: 'loud' }, 'info'), 'info');
    assert.equal(levelFromEnv({}, 'warn'), 'warn');
  });
});
