import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBwrapStatus } from './status.js';

// Verbatim from bubblewrap 0.8.0: `bwrap ... --json-status-fd 3 -- sh -c 'exit 7'`.
const START =
  '{ "child-pid": 10250, "cgroup-namespace": 4026532181, "ipc-namespace": 4026532179, "mnt-namespace": 4026532177, ' +
  '"net-namespace": 4026532182, "pid-namespace": 4026532180, "uts-namespace": 4026532178 }\n';

describe('parseBwrapStatus', () => {
  it('reads the child pid and the exit code of real bwrap output', () => {
    assert.deepEqual(parseBwrapStatus(`${START}{ "exit-code": 7 }\n`), { childPid: 10250, exitCode: 7 });
  });

  it('reports 128 + N for a command killed by signal N, as bwrap does', () => {
    // bwrap 0.8.0, command `sh -c 'kill -TERM $$'`: the same document as for `exit 143`.
    assert.deepEqual(parseBwrapStatus(`${START}{ "exit-code": 143 }\n`), { childPid: 10250, exitCode: 143 });
  });

  it('has only the child pid while the task runs (or after bwrap itself was killed)', () => {
    assert.deepEqual(parseBwrapStatus(START), { childPid: 10250 });
    assert.deepEqual(parseBwrapStatus(''), {});
  });

  it('ignores a partial trailing document until it is complete', () => {
    assert.deepEqual(parseBwrapStatus('{ "child-pid": 12, "mnt-nam'), {});
    assert.deepEqual(parseBwrapStatus(`${START}{ "exit-co`), { childPid: 10250 });
    assert.deepEqual(parseBwrapStatus(`${START}{ "exit-code": 1`), { childPid: 10250 });
  });

  it('accepts documents with no separator, or other whitespace, between them', () => {
    assert.deepEqual(parseBwrapStatus('{"child-pid":42}{"exit-code":0}'), { childPid: 42, exitCode: 0 });
    assert.deepEqual(parseBwrapStatus('{"child-pid":42}\r\n  {"exit-code":3}'), { childPid: 42, exitCode: 3 });
  });

  it('skips invalid documents and fields of the wrong type, and handles braces inside strings', () => {
    assert.deepEqual(parseBwrapStatus('{nope}{"child-pid":"7"}{"child-pid":-1}{"exit-code":300}{"child-pid":9,"note":"}{\\""}'), { childPid: 9 });
  });

  it('keeps the first child pid and the last exit code', () => {
    assert.deepEqual(parseBwrapStatus('{"child-pid":1}{"child-pid":2}{"exit-code":1}{"exit-code":2}'), { childPid: 1, exitCode: 2 });
  });
});
