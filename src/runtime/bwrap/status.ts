/**
 * Reads what bubblewrap writes to `--json-status-fd`: JSON documents, one per event, which the
 * supervisor trusts instead of parsing text (containers/bubblewrap:bubblewrap.c,
 * `report_child_exit_status`). Pure: the runtime adapter reads the fd or file.
 *
 * Measured with bubblewrap 0.8.0 (`--unshare-pid`, command `sh -c 'exit 7'`):
 *
 *     { "child-pid": 8808, "mnt-namespace": 4026532177, "pid-namespace": 4026532178 }
 *     { "exit-code": 7 }
 *
 * `child-pid` is bwrap's sandbox init (PID 1 inside) with `--unshare-pid`, the command's parent.
 * When the command dies of a signal, bwrap reports the shell convention 128 + signal number
 * (`kill -TERM $$` → `{ "exit-code": 143 }`, SIGKILL → 137), exactly as it would report
 * `exit 143`: the two cannot be told apart from the status alone. When bwrap itself is killed,
 * no `exit-code` document is written (and the sandbox keeps running).
 */

export interface BwrapStatus {
  /** The sandbox's first process on the host (init with --unshare-pid). */
  readonly childPid?: number;
  /** The command's exit status; 128 + N when it died of signal N. */
  readonly exitCode?: number;
}

/** The complete top-level `{…}` documents of `text`, in order; an unfinished tail is skipped. */
function jsonObjects(text: string): string[] {
  const objects: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      if (depth > 0) inString = true;
    } else if (c === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === '}' && depth > 0) {
      depth--;
      if (depth === 0) objects.push(text.slice(start, i + 1));
    }
  }
  return objects;
}

const isPid = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) > 0;
const isExitCode = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= 255;

/**
 * The child pid and exit code found so far in bwrap's status output. Robust to a stream read
 * mid-write (a partial last document is ignored until it completes) and to documents separated
 * by newlines or by nothing; a document that is not valid JSON, or a field of the wrong type, is
 * skipped. The first `child-pid` and the last `exit-code` win.
 */
export function parseBwrapStatus(text: string): BwrapStatus {
  let childPid: number | undefined;
  let exitCode: number | undefined;
  for (const objectText of jsonObjects(text)) {
    let value: unknown;
    try {
      value = JSON.parse(objectText);
    } catch {
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    const record = value as Record<string, unknown>;
    if (childPid === undefined && isPid(record['child-pid'])) childPid = record['child-pid'];
    if (isExitCode(record['exit-code'])) exitCode = record['exit-code'];
  }
  return { ...(childPid === undefined ? {} : { childPid }), ...(exitCode === undefined ? {} : { exitCode }) };
}
