/**
 * Reads Nix's `--log-format internal-json` stderr: each line is `@nix {json}` (other lines are
 * plain text from older code paths and are kept as such). Turns activity starts into short
 * progress messages, keeps error messages and the tail of each build's log for the error the
 * driver reports, and throttles progress so Nomad's task events are not flooded. Pure: no I/O,
 * the clock is injected.
 *
 * The format is the same in Nix 2.8 and current Nix/Lix: `{"action":"start","id","level",
 * "type","text","fields"}`, `{"action":"stop","id"}`, `{"action":"result","id","type",
 * "fields"}` and `{"action":"msg","level","msg","raw_msg"?}` (`raw_msg` is the message without
 * the `error:` prefix; older entries lack it).
 */

/** Activity types from Nix's logging.hh (stable since 2.0). */
export const ActivityType = {
  CopyPath: 100,
  FileTransfer: 101,
  Realise: 102,
  CopyPaths: 103,
  Builds: 104,
  Build: 105,
  OptimiseStore: 106,
  VerifyPaths: 107,
  Substitute: 108,
  QueryPathInfo: 109,
  PostBuildHook: 110,
  BuildWaiting: 111,
} as const;

/** Result types from Nix's logging.hh. */
export const ResultType = {
  FileLinked: 100,
  BuildLogLine: 101,
  UntrustedPath: 102,
  CorruptedPath: 103,
  SetPhase: 104,
  Progress: 105,
  SetExpected: 106,
  PostBuildLogLine: 107,
} as const;

/** One parsed stderr line of a Nix command run with `--log-format internal-json`. */
export type NixLogEntry =
  | { readonly action: 'start'; readonly id: number; readonly type: number; readonly level: number; readonly text: string; readonly fields: readonly unknown[] }
  | { readonly action: 'stop'; readonly id: number }
  | { readonly action: 'result'; readonly id: number; readonly type: number; readonly fields: readonly unknown[] }
  | { readonly action: 'msg'; readonly level: number; readonly message: string }
  | { readonly action: 'plain'; readonly text: string };

// biome-ignore lint/suspicious/noControlCharactersInRegex: a terminal escape sequence starts with ESC (U+001B), the character this must match
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g;

/** `text` without terminal colour codes. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

const num = (value: unknown): number => (typeof value === 'number' ? value : Number.NaN);
const str = (value: unknown): string => (typeof value === 'string' ? value : '');
const list = (value: unknown): readonly unknown[] => (Array.isArray(value) ? value : []);

/**
 * Parses one stderr line. `@nix {…}` lines become their entry (messages with colours removed
 * and without a leading `error: `/`warning: `); anything else, including a malformed `@nix`
 * line, is `plain`. Undefined for blank lines.
 */
export function parseNixLogLine(line: string): NixLogEntry | undefined {
  if (line.trim() === '') return undefined;
  if (!line.startsWith('@nix ')) return { action: 'plain', text: stripAnsi(line) };
  let value: unknown;
  try {
    value = JSON.parse(line.slice(5));
  } catch {
    return { action: 'plain', text: stripAnsi(line) };
  }
  if (typeof value !== 'object' || value === null) return { action: 'plain', text: stripAnsi(line) };
  const v = value as Record<string, unknown>;
  switch (v['action']) {
    case 'start':
      return { action: 'start', id: num(v['id']), type: num(v['type']), level: num(v['level']), text: stripAnsi(str(v['text'])), fields: list(v['fields']) };
    case 'stop':
      return { action: 'stop', id: num(v['id']) };
    case 'result':
      return { action: 'result', id: num(v['id']), type: num(v['type']), fields: list(v['fields']) };
    case 'msg': {
      const raw = typeof v['raw_msg'] === 'string' && v['raw_msg'] !== '' ? v['raw_msg'] : str(v['msg']);
      const message = stripAnsi(raw)
        .replace(/^(error|warning): /, '')
        .trim();
      return { action: 'msg', level: num(v['level']), message };
    }
    default:
      return { action: 'plain', text: stripAnsi(line) };
  }
}

/**
 * The human progress message for an activity start: `building <drv>` for builds,
 * `copying <path>` (plus ` from <substituter>` when known) for substitutions and copies.
 * Undefined for every other entry.
 */
export function progressMessage(entry: NixLogEntry): string | undefined {
  if (entry.action !== 'start') return undefined;
  const first = str(entry.fields[0]);
  switch (entry.type) {
    case ActivityType.Build:
      return first === '' ? entry.text || undefined : `building ${first}`;
    case ActivityType.Substitute: {
      if (first === '') return entry.text || undefined;
      const from = str(entry.fields[1]);
      return from === '' ? `copying ${first}` : `copying ${first} from ${from}`;
    }
    case ActivityType.CopyPath:
      return first === '' ? entry.text || undefined : `copying ${first}`;
    default:
      return undefined;
  }
}

/** What one Nix command fetched from binary caches (NixLogCollector.fetchSummary). */
export interface FetchSummary {
  /** Store paths substituted. */
  readonly paths: number;
  /** Paths per substituter URL, in the order Nix first used each. */
  readonly caches: readonly { readonly cache: string; readonly paths: number }[];
  /** Bytes downloaded (compressed NARs, as the narinfos announce them). */
  readonly downloadBytes: number;
  /** Bytes unpacked into the store (NAR sizes). */
  readonly unpackedBytes: number;
}

/** `2.5 MiB`, `696 B`: a byte count for task events. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * The task event for a fetch: `Fetched 2 store paths (1.9 MiB download, 4.0 MiB unpacked) from
 * https://cache.example.org`; with several caches each gets its count (`from A (1), B (1)`).
 * Undefined when nothing was fetched.
 */
export function fetchMessage(summary: FetchSummary): string | undefined {
  if (summary.paths === 0) return undefined;
  const noun = summary.paths === 1 ? 'store path' : 'store paths';
  const from = summary.caches.length === 1 ? (summary.caches[0]?.cache ?? '') : summary.caches.map(({ cache, paths }) => `${cache} (${paths})`).join(', ');
  return `Fetched ${summary.paths} ${noun} (${formatBytes(summary.downloadBytes)} download, ${formatBytes(summary.unpackedBytes)} unpacked) from ${from}`;
}

/** Level-0 messages that are advice, not errors (`(use '--show-trace' …)`). */
const HINTS = /^\(use '--show-trace'/;

/** How many build log lines per derivation the collector keeps for error messages. */
export const LOG_TAIL_LINES = 10;

/**
 * Collects what a failing Nix command said: its error messages (level 0) in order, plain
 * stderr lines, and the last log lines of every build, keyed by derivation path.
 */
export class NixLogCollector {
  private readonly buildOf = new Map<number, string>();
  private readonly logTails = new Map<string, string[]>();
  private readonly errorMessages: string[] = [];
  private readonly warningMessages: string[] = [];
  private readonly plainLines: string[] = [];
  /** Store path → the substituter it is being (or was) fetched from. */
  private readonly substituted = new Map<string, string>();
  /** Store path → where Nix copied it from (CopyPath activities: substituters, and `nix copy`). */
  private readonly copiedFrom = new Map<string, string>();
  /** The latest total download and NAR sizes Nix expects for this command (SetExpected). */
  private expectedDownload = 0;
  private expectedUnpacked = 0;

  /** Feeds one stderr line; returns the progress message it announces, if any. */
  add(line: string): string | undefined {
    const entry = parseNixLogLine(line);
    if (entry === undefined) return undefined;
    switch (entry.action) {
      case 'start': {
        const [path, from] = [str(entry.fields[0]), str(entry.fields[1])];
        if (entry.type === ActivityType.Build && path !== '') this.buildOf.set(entry.id, path);
        if (entry.type === ActivityType.Substitute && path !== '' && from !== '') this.substituted.set(path, from);
        if (entry.type === ActivityType.CopyPath && path !== '' && from !== '') this.copiedFrom.set(path, from);
        return progressMessage(entry);
      }
      case 'result': {
        if (entry.type === ResultType.SetExpected) {
          const [activity, bytes] = [num(entry.fields[0]), num(entry.fields[1])];
          if (activity === ActivityType.FileTransfer && Number.isFinite(bytes)) this.expectedDownload = bytes;
          if (activity === ActivityType.CopyPath && Number.isFinite(bytes)) this.expectedUnpacked = bytes;
          return undefined;
        }
        if (entry.type !== ResultType.BuildLogLine && entry.type !== ResultType.PostBuildLogLine) return undefined;
        const drv = this.buildOf.get(entry.id);
        const text = stripAnsi(str(entry.fields[0])).trimEnd();
        if (drv === undefined || text === '') return undefined;
        const tail = this.logTails.get(drv) ?? [];
        tail.push(text);
        if (tail.length > LOG_TAIL_LINES) tail.shift();
        this.logTails.set(drv, tail);
        return undefined;
      }
      case 'msg':
        if (entry.level === 0 && entry.message !== '' && !HINTS.test(entry.message) && !this.errorMessages.includes(entry.message)) {
          this.errorMessages.push(entry.message);
        }
        if (entry.level === 1 && entry.message !== '' && !this.warningMessages.includes(oneLine(entry.message)))
          this.warningMessages.push(oneLine(entry.message));
        return undefined;
      case 'plain':
        this.plainLines.push(entry.text);
        if (this.plainLines.length > 50) this.plainLines.shift();
        return undefined;
      default:
        return undefined;
    }
  }

  /** Nix's error messages (without `error: `), first one first. */
  get errors(): readonly string[] {
    return this.errorMessages;
  }

  /** Nix's warnings (level 1, without `warning: `), first one first. */
  get warnings(): readonly string[] {
    return this.warningMessages;
  }

  /** Where Nix started copying each store path from (substituters and other stores), in order. */
  get copies(): ReadonlyMap<string, string> {
    return this.copiedFrom;
  }

  /**
   * What the command fetched from substituters: paths per substituter (in first-use order),
   * and the download and unpacked (NAR) bytes Nix announced for them. Meaningful once the
   * command succeeded (every announced substitution then happened).
   */
  fetchSummary(): FetchSummary {
    const perCache = new Map<string, number>();
    for (const from of this.substituted.values()) perCache.set(from, (perCache.get(from) ?? 0) + 1);
    return {
      paths: this.substituted.size,
      caches: [...perCache].map(([cache, paths]) => ({ cache, paths })),
      downloadBytes: this.expectedDownload,
      unpackedBytes: this.expectedUnpacked,
    };
  }

  /** The last log lines the build of `drv` printed. */
  logTail(drv: string): readonly string[] {
    return this.logTails.get(drv) ?? [];
  }

  /**
   * One line saying why the command failed: Nix's error messages joined by `; `, each
   * followed by the log tail of the derivation it names (when Nix did not include one), or the
   * `error:` lines of plain stderr, or undefined when Nix said nothing useful.
   */
  failureText(): string | undefined {
    const messages = this.errorMessages.length > 0 ? this.errorMessages : this.plainErrors();
    if (messages.length === 0) return undefined;
    return messages.map((m) => this.withLogTail(oneLine(m))).join('; ');
  }

  private plainErrors(): string[] {
    const start = this.plainLines.findIndex((l) => /^error: /.test(l));
    if (start === -1) return [];
    return [
      this.plainLines
        .slice(start)
        .join('\n')
        .replace(/^error: /, ''),
    ];
  }

  private withLogTail(message: string): string {
    if (/log lines/.test(message)) return message;
    const drv = /'(\/[^']+\.drv)'/.exec(message)?.[1];
    if (drv === undefined || !/failed/.test(message)) return message;
    const tail = this.logTail(drv);
    if (tail.length === 0) return message;
    return `${message} (last ${tail.length} log line${tail.length === 1 ? '' : 's'}: ${tail.join(' | ')})`;
  }
}

/** Collapses a multi-line Nix message (indented continuation lines) into one line. */
export function oneLine(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' ');
}

/**
 * Wraps `emit` so it is called at most once per `intervalMs` (by `now()`, in ms); messages in
 * between are dropped, and a message equal to the last emitted one is never repeated.
 */
export function throttle(emit: (message: string) => void, options: { intervalMs?: number; now: () => number }): (message: string) => void {
  const interval = options.intervalMs ?? 2_000;
  let last: number | undefined;
  let lastMessage: string | undefined;
  return (message) => {
    const t = options.now();
    if (message === lastMessage) return;
    if (last !== undefined && t - last < interval) return;
    last = t;
    lastMessage = message;
    emit(message);
  };
}
