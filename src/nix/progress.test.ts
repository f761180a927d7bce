import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NixLogCollector, fetchMessage, formatBytes, oneLine, parseNixLogLine, progressMessage, stripAnsi, throttle } from './progress.js';

// Lines as Nix 2.8 prints them with --log-format internal-json (captured on the test machine).
const DRV = '/nix/store/il14rmdw450fyhnf79v1pz5shkv1lbkk-web.drv';
const BUILD_START = `@nix {"action":"start","fields":["${DRV}","",1,1],"id":41,"level":3,"text":"building '${DRV}'","type":105}`;
const LOG_LINE = (text: string) => `@nix {"action":"result","fields":[${JSON.stringify(text)}],"id":41,"type":101}`;
const BUILD_ERROR = `@nix {"action":"msg","column":null,"file":null,"level":0,"line":null,"msg":"\\u001b[31;1merror:\\u001b[0m \\u001b[35;1m\\u001b[0mbuilder for '\\u001b[35;1m${DRV}\\u001b[0m' failed with exit code 3\\u001b[0m","raw_msg":"\\u001b[35;1m\\u001b[0mbuilder for '\\u001b[35;1m${DRV}\\u001b[0m' failed with exit code 3\\u001b[0m"}`;
const ATTR_ERROR =
  '@nix {"action":"msg","column":null,"file":null,"level":0,"line":null,"msg":"\\u001b[31;1merror:\\u001b[0m flake \'\\u001b[35;1mpath:/tmp/fl\\u001b[0m\' does not provide attribute \\u001b[35;1m\'packages.x86_64-linux.nope\', \'legacyPackages.x86_64-linux.nope\' or \'nope\'\\u001b[0m","raw_msg":"flake \'\\u001b[35;1mpath:/tmp/fl\\u001b[0m\' does not provide attribute \\u001b[35;1m\'packages.x86_64-linux.nope\', \'legacyPackages.x86_64-linux.nope\' or \'nope\'\\u001b[0m"}';

describe('nix internal-json log', () => {
  it('parses start, stop, result and msg lines', () => {
    assert.deepEqual(parseNixLogLine(BUILD_START), {
      action: 'start',
      id: 41,
      type: 105,
      level: 3,
      text: `building '${DRV}'`,
      fields: [DRV, '', 1, 1],
    });
    assert.deepEqual(parseNixLogLine('@nix {"action":"stop","id":41}'), { action: 'stop', id: 41 });
    assert.deepEqual(parseNixLogLine(LOG_LINE('oops')), { action: 'result', id: 41, type: 101, fields: ['oops'] });
    assert.deepEqual(parseNixLogLine(BUILD_ERROR), { action: 'msg', level: 0, message: `builder for '${DRV}' failed with exit code 3` });
    assert.deepEqual(parseNixLogLine('@nix {"action":"msg","level":0,"msg":"\\u001b[31;1merror:\\u001b[0m boom"}'), {
      action: 'msg',
      level: 0,
      message: 'boom',
    });
  });

  it('keeps other lines as plain text and skips blank ones', () => {
    assert.deepEqual(parseNixLogLine("warning: you did not specify '--add-root'"), { action: 'plain', text: "warning: you did not specify '--add-root'" });
    assert.deepEqual(parseNixLogLine('@nix {not json'), { action: 'plain', text: '@nix {not json' });
    assert.deepEqual(parseNixLogLine('@nix 42'), { action: 'plain', text: '@nix 42' });
    assert.equal(parseNixLogLine('   '), undefined);
  });

  it('strips terminal colours', () => {
    assert.equal(stripAnsi('\u001b[31;1merror:\u001b[0m x'), 'error: x');
  });

  it('announces builds, substitutions and copies', () => {
    const start = (type: number, fields: unknown[], text = '') =>
      parseNixLogLine(`@nix ${JSON.stringify({ action: 'start', id: 1, level: 3, type, text, fields })}`)!;
    assert.equal(progressMessage(parseNixLogLine(BUILD_START)!), `building ${DRV}`);
    assert.equal(progressMessage(start(108, ['/nix/store/abc-hello', 'https://cache.nixos.org'])), 'copying /nix/store/abc-hello from https://cache.nixos.org');
    assert.equal(progressMessage(start(108, ['/nix/store/abc-hello'])), 'copying /nix/store/abc-hello');
    assert.equal(progressMessage(start(100, ['/nix/store/abc-hello', 'https://c', 'local'])), 'copying /nix/store/abc-hello');
    assert.equal(progressMessage(start(105, [], "building 'x'")), "building 'x'");
    assert.equal(progressMessage(start(0, [], 'querying info about missing paths')), undefined);
    assert.equal(progressMessage(parseNixLogLine('@nix {"action":"stop","id":1}')!), undefined);
  });

  it('explains a failed build with the log tail of its derivation', () => {
    const log = new NixLogCollector();
    assert.equal(log.add(BUILD_START), `building ${DRV}`);
    for (const line of ['v3', 'line1', 'oops']) assert.equal(log.add(LOG_LINE(line)), undefined);
    log.add(BUILD_ERROR);
    assert.deepEqual(log.errors, [`builder for '${DRV}' failed with exit code 3`]);
    assert.deepEqual(log.logTail(DRV), ['v3', 'line1', 'oops']);
    assert.equal(log.failureText(), `builder for '${DRV}' failed with exit code 3 (last 3 log lines: v3 | line1 | oops)`);
  });

  it('keeps only the last 10 log lines of a build', () => {
    const log = new NixLogCollector();
    log.add(BUILD_START);
    for (let i = 1; i <= 12; i += 1) log.add(LOG_LINE(`line ${i}`));
    assert.deepEqual(log.logTail(DRV), ['line 3', 'line 4', 'line 5', 'line 6', 'line 7', 'line 8', 'line 9', 'line 10', 'line 11', 'line 12']);
  });

  it('joins several errors and collapses multi-line ones', () => {
    const log = new NixLogCollector();
    log.add(ATTR_ERROR);
    log.add('@nix {"action":"msg","level":0,"msg":"error: second\\n       indented detail"}');
    log.add(ATTR_ERROR);
    log.add('@nix {"action":"msg","level":0,"msg":"(use \'--show-trace\' to show detailed location information)"}');
    assert.equal(
      log.failureText(),
      "flake 'path:/tmp/fl' does not provide attribute 'packages.x86_64-linux.nope', 'legacyPackages.x86_64-linux.nope' or 'nope'; second indented detail",
    );
  });

  it('falls back to plain error lines, else says nothing', () => {
    const log = new NixLogCollector();
    log.add('warning: something');
    assert.equal(log.failureText(), undefined);
    log.add("error: path '/tmp' is not in the Nix store");
    assert.equal(log.failureText(), "path '/tmp' is not in the Nix store");
    assert.equal(oneLine('a\n   b\n\n c '), 'a b c');
  });

  it('throttles progress to one message per interval', () => {
    let now = 0;
    const seen: string[] = [];
    const emit = throttle((m) => seen.push(`${now}:${m}`), { now: () => now });
    emit('building a');
    now = 500;
    emit('building b');
    now = 1999;
    emit('building c');
    now = 2000;
    emit('building d');
    now = 5000;
    emit('building d');
    emit('building e');
    now = 7000;
    emit('building f');
    assert.deepEqual(seen, ['0:building a', '2000:building d', '5000:building e', '7000:building f']);
  });

  it('takes another interval', () => {
    let now = 0;
    const seen: string[] = [];
    const emit = throttle((m) => seen.push(m), { intervalMs: 100, now: () => now });
    emit('a');
    now = 99;
    emit('b');
    now = 100;
    emit('c');
    assert.deepEqual(seen, ['a', 'c']);
  });

  // a substitution from a loopback HTTP cache, as Nix 2.8 logged it (abridged)
  const P = '/nix/store/fkjyhc41l2d10c15dmddmni1267x4adq-trustx-15288';
  const CACHE = 'http://127.0.0.1:18777/cache';
  const FETCH = [
    `@nix {"action":"result","fields":[101,696],"id":4,"type":106}`,
    `@nix {"action":"result","fields":[100,1696],"id":4,"type":106}`,
    `@nix {"action":"start","fields":["${P}","${CACHE}"],"id":8,"level":0,"text":"","type":108}`,
    `@nix {"action":"start","fields":["${P}","${CACHE}","local"],"id":9,"level":3,"text":"copying path '${P}' from '${CACHE}'","type":100}`,
    `@nix {"action":"start","fields":["${CACHE}/nar/0yw0.nar"],"id":10,"level":4,"text":"downloading","type":101}`,
    `@nix {"action":"stop","id":10}`,
    `@nix {"action":"stop","id":9}`,
    `@nix {"action":"stop","id":8}`,
  ];

  it('sums up what a command fetched: paths per cache, download and unpacked bytes', () => {
    const log = new NixLogCollector();
    for (const line of FETCH) log.add(line);
    const other = '/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-busybox';
    log.add(`@nix {"action":"start","fields":["${other}","file:///srv/cache"],"id":11,"level":0,"text":"","type":108}`);
    log.add(`@nix {"action":"result","fields":[101,3145728],"id":4,"type":106}`);
    const summary = log.fetchSummary();
    assert.deepEqual(summary, {
      paths: 2,
      caches: [
        { cache: CACHE, paths: 1 },
        { cache: 'file:///srv/cache', paths: 1 },
      ],
      downloadBytes: 3145728,
      unpackedBytes: 1696,
    });
    assert.equal(fetchMessage(summary), `Fetched 2 store paths (3.0 MiB download, 1.7 KiB unpacked) from ${CACHE} (1), file:///srv/cache (1)`);
    assert.deepEqual([...log.copies], [[P, CACHE]]);
  });

  it('says nothing when nothing was fetched, and one cache plainly', () => {
    assert.equal(fetchMessage(new NixLogCollector().fetchSummary()), undefined);
    const log = new NixLogCollector();
    for (const line of FETCH) log.add(line);
    assert.equal(fetchMessage(log.fetchSummary()), `Fetched 1 store path (696 B download, 1.7 KiB unpacked) from ${CACHE}`);
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(5 * 1024 ** 3), '5.0 GiB');
  });

  it('keeps warnings, such as an unsigned substitute', () => {
    const log = new NixLogCollector();
    log.add(
      `@nix {"action":"msg","level":1,"msg":"\\u001b[35;1mwarning:\\u001b[0m the substitute for '${P}' from '${CACHE}' is not signed by any of the keys in 'trusted-public-keys'"}`,
    );
    assert.deepEqual(log.warnings, [`the substitute for '${P}' from '${CACHE}' is not signed by any of the keys in 'trusted-public-keys'`]);
    assert.deepEqual(log.errors, []);
  });
});
