/**
 * Size limits of everything Nomad (and, through it, a job author) sends the plugin, checked at
 * the edge before anything is decoded further or used: a huge or deeply nested value fails at
 * once with an `invalid_argument` error naming the field, its size and the limit, instead of
 * growing the plugin's memory, overflowing its stack or reaching a command line. The README's
 * "Input limits" table lists the same numbers. Pure: no I/O.
 *
 * Sources of the numbers: Linux's MAX_ARG_STRLEN (131072 bytes per argv/env string) and its
 * ~2 MiB ARG_MAX; PATH_MAX (4096); gRPC's default maximum message (4 MiB). The rest are far
 * above any real job (a real task config is a few KiB, nested 3 levels).
 */
import { failure } from '../errors.js';

export const INPUT_LIMITS = {
  /** One gRPC message the plugin receives, in bytes (plugin/server.ts). */
  messageBytes: 4 * 1024 * 1024,
  /** A msgpack-encoded config (task config, plugin config), in bytes. */
  configBytes: 1024 * 1024,
  /** Nesting depth of a config value (a task config is 3 deep). */
  depth: 32,
  /** Any string, in characters; Linux's limit for one argv or env string (MAX_ARG_STRLEN). */
  stringChars: 128 * 1024,
  /** A path, flake reference, store path or command (PATH_MAX). */
  pathChars: 4096,
  /** An id or name (task id, alloc id, task, job, group, namespace, user). */
  nameChars: 1024,
  /** Entries of any list (args, packages, mounts, devices, DNS servers, …). */
  listItems: 1024,
  /** Entries of any map (env, the keys of a config block). */
  mapEntries: 4096,
  /** The task's argv and environment together, in bytes (well below Linux's ARG_MAX). */
  commandLineBytes: 1024 * 1024,
  /** RecoverTask's driver_state, in bytes. */
  driverStateBytes: 1024 * 1024,
} as const;

/** The rows of the README's "Input limits" table (test/readme.test.ts checks they are there). */
export function inputLimitRows(): string[] {
  const kib = (bytes: number) => (bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`);
  const L = INPUT_LIMITS;
  return [
    `| one gRPC message (any call) | ${kib(L.messageBytes)} | RESOURCE_EXHAUSTED from gRPC, before decoding |`,
    `| task \`config {}\` or plugin config, msgpack-encoded | ${kib(L.configBytes)} | |`,
    `| nesting of a config value, or of driver_state JSON | ${L.depth} levels | |`,
    `| any string (an arg, an env \`KEY=value\`, a config value) | ${L.stringChars} characters | Linux's MAX_ARG_STRLEN |`,
    `| \`command\`, \`flake\`, \`store_path\`, \`work_dir\`, each of \`packages\`; alloc dir, log, mount and device paths | ${L.pathChars} characters | PATH_MAX |`,
    `| task id, name, alloc id, job, group, namespace, user | ${L.nameChars} characters | |`,
    `| entries of any list (\`args\`, \`packages\`, mounts, devices, DNS) | ${L.listItems} | |`,
    `| entries of any map (\`env\`, a config block) | ${L.mapEntries} | |`,
    `| \`args\` and \`env\` together | ${kib(L.commandLineBytes)} | below Linux's ARG_MAX |`,
    `| RecoverTask's driver_state | ${kib(L.driverStateBytes)} | |`,
  ];
}

/** What went over a limit: the field (a dotted path), how big it was, the limit and its unit. */
export interface LimitViolation {
  readonly field: string;
  readonly size: number;
  readonly limit: number;
  readonly unit: 'bytes' | 'characters' | 'entries' | 'levels';
}

/** The DriverError for a violation: `failed to <what>: <field> has N <unit>, more than the limit of L; fix: …`. */
export function limitFailure(what: string, violation: LimitViolation) {
  const { field, size, limit, unit } = violation;
  const has = unit === 'levels' ? `is nested more than ${limit} levels deep` : `has ${size} ${unit}, more than the limit of ${limit}`;
  const fix =
    unit === 'levels'
      ? `flatten ${field}; the driver accepts values nested at most ${limit} levels deep`
      : `shorten ${field} to at most ${limit} ${unit} (pass large data as a file, e.g. an artifact or template, not inline)`;
  return failure(what, `${field} ${has}`, { code: 'invalid_argument', fix });
}

/** The violation of `text` over `limit` characters at `field`, if any. */
export function stringOver(field: string, text: string, limit: number = INPUT_LIMITS.stringChars): LimitViolation | undefined {
  return text.length > limit ? { field, size: text.length, limit, unit: 'characters' } : undefined;
}

/**
 * Walks msgpack `bytes` without decoding them (iteratively: no recursion, whatever the
 * nesting) and returns the first value over a limit: the whole (configBytes), nesting (depth),
 * a string (stringChars, counted in bytes here, an upper bound of its characters), a binary,
 * an array (listItems) or a map (mapEntries). Fields are named by their path, e.g.
 * `args[3]` or `env.FOO`. Malformed bytes are not judged here (the decoder reports them).
 */
export function msgpackLimitViolation(
  bytes: Uint8Array,
  root: string,
  limits: { bytes: number; depth: number; stringChars: number; listItems: number; mapEntries: number },
): LimitViolation | undefined {
  if (bytes.length > limits.bytes) return { field: root, size: bytes.length, limit: limits.bytes, unit: 'bytes' };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // open containers: items still to read, whether it is a map (keys and values alternate), the path
  const stack: { left: number; map: boolean; keyNext: boolean; path: string; index: number; key: string }[] = [];
  let offset = 0;
  const pathHere = (): string => {
    const top = stack.at(-1);
    if (top === undefined) return root;
    if (top.path.endsWith('…')) return top.path;
    if (!top.map) return `${top.path === '' ? root : top.path}[${top.index}]`;
    return top.keyNext ? `${top.path === '' ? '' : `${top.path}.`}<key>` : `${top.path === '' ? '' : `${top.path}.`}${top.key}`;
  };
  const plainPath = (path: string) => (path === root ? '' : path);
  while (offset < bytes.length) {
    const at = pathHere();
    const type = bytes[offset]!;
    let length = 0; // payload bytes to skip
    let header = 1;
    let container: { count: number; map: boolean } | undefined;
    let strLength: number | undefined;
    const u8 = () => view.getUint8(offset + 1);
    const u16 = () => view.getUint16(offset + 1);
    const u32 = () => view.getUint32(offset + 1);
    try {
      if (type <= 0x7f || type >= 0xe0 || (type >= 0xc0 && type <= 0xc3)) length = 0;
      else if (type >= 0x80 && type <= 0x8f) container = { count: type & 0x0f, map: true };
      else if (type >= 0x90 && type <= 0x9f) container = { count: type & 0x0f, map: false };
      else if (type >= 0xa0 && type <= 0xbf) strLength = type & 0x1f;
      else if (type === 0xd9) [header, strLength] = [2, u8()];
      else if (type === 0xda) [header, strLength] = [3, u16()];
      else if (type === 0xdb) [header, strLength] = [5, u32()];
      else if (type === 0xc4) [header, length] = [2, u8()];
      else if (type === 0xc5) [header, length] = [3, u16()];
      else if (type === 0xc6) [header, length] = [5, u32()];
      else if (type === 0xc7) [header, length] = [3, u8()];
      else if (type === 0xc8) [header, length] = [4, u16()];
      else if (type === 0xc9) [header, length] = [6, u32()];
      else if (type === 0xca) length = 4;
      else if (type === 0xcb) length = 8;
      else if (type >= 0xcc && type <= 0xcf) length = 1 << (type - 0xcc);
      else if (type >= 0xd0 && type <= 0xd3) length = 1 << (type - 0xd0);
      else if (type >= 0xd4 && type <= 0xd8) length = 1 + (1 << (type - 0xd4));
      else if (type === 0xdc) [header, container] = [3, { count: u16(), map: false }];
      else if (type === 0xdd) [header, container] = [5, { count: u32(), map: false }];
      else if (type === 0xde) [header, container] = [3, { count: u16(), map: true }];
      else if (type === 0xdf) [header, container] = [5, { count: u32(), map: true }];
      else return undefined; // 0xc1: never used; the decoder reports it
    } catch {
      return undefined; // truncated header
    }
    if (strLength !== undefined) {
      if (strLength > limits.stringChars) return { field: plainPath(at) || root, size: strLength, limit: limits.stringChars, unit: 'characters' };
      length = strLength;
    }
    if (type >= 0xc4 && type <= 0xc6 && length > limits.stringChars)
      return { field: plainPath(at) || root, size: length, limit: limits.stringChars, unit: 'bytes' };
    const top = stack.at(-1);
    // a string key of a map names the path of its value
    if (top?.map && top.keyNext && strLength !== undefined) {
      const end = Math.min(offset + header + strLength, bytes.length);
      const key = Buffer.from(bytes.buffer, bytes.byteOffset + offset + header, Math.max(0, end - offset - header)).toString('utf8');
      top.key = key.length > 64 ? `${key.slice(0, 64)}…` : key;
    } else if (top?.map && top.keyNext) {
      top.key = '<key>';
    }
    offset += header + length;
    if (container !== undefined) {
      const limit = container.map ? limits.mapEntries : limits.listItems;
      if (container.count > limit) return { field: plainPath(at) || root, size: container.count, limit, unit: 'entries' };
      if (stack.length + 1 > limits.depth) return { field: plainPath(at) || root, size: stack.length + 1, limit: limits.depth, unit: 'levels' };
      // its items follow; it fills its parent's slot once they are read
      // a path stays short, even 30 levels deep: its tail becomes an ellipsis
      const path = top?.path.endsWith('…') ? top.path : at.length > 80 ? `${cutPath(plainPath(at), 80)}…` : plainPath(at);
      if (container.count > 0)
        stack.push({ left: container.map ? container.count * 2 : container.count, map: container.map, keyNext: true, path, index: 0, key: '' });
      else finishValue(stack);
      continue;
    }
    finishValue(stack);
  }
  return undefined;
}

/** `path` cut to at most `max` characters at a segment boundary (before a `[` or a `.`). */
function cutPath(path: string, max: number): string {
  const head = path.slice(0, max + 1);
  const cut = Math.max(head.lastIndexOf('['), head.lastIndexOf('.'));
  return cut > 0 ? head.slice(0, cut) : head.slice(0, max);
}

/**
 * One value of the innermost open container was read: count it; a container whose last item
 * that was is complete, and is itself one value of its parent (and so on up).
 */
function finishValue(stack: { left: number; map: boolean; keyNext: boolean; index: number }[]): void {
  for (;;) {
    const top = stack.at(-1);
    if (top === undefined) return;
    top.left -= 1;
    if (top.map) top.keyNext = !top.keyNext;
    else top.index += 1;
    if (top.left > 0) return;
    stack.pop();
  }
}

/**
 * The first violation among a task's proto fields and its decoded config's strings that become
 * its command line: ids and names (nameChars), paths (pathChars), lists (listItems), env
 * (mapEntries, each `KEY=value` within stringChars) and argv plus env together
 * (commandLineBytes). `fields` maps a field name to its value; lists are checked item by item.
 */
export function taskFieldViolation(fields: {
  readonly names: Readonly<Record<string, string>>;
  readonly paths: Readonly<Record<string, string | readonly string[]>>;
  readonly lists: Readonly<Record<string, readonly unknown[]>>;
  readonly env: Readonly<Record<string, string>>;
  readonly args: readonly unknown[];
}): LimitViolation | undefined {
  for (const [field, value] of Object.entries(fields.names)) {
    const over = stringOver(field, value, INPUT_LIMITS.nameChars);
    if (over !== undefined) return over;
  }
  for (const [field, list] of Object.entries(fields.lists)) {
    if (list.length > INPUT_LIMITS.listItems) return { field, size: list.length, limit: INPUT_LIMITS.listItems, unit: 'entries' };
  }
  for (const [field, value] of Object.entries(fields.paths)) {
    const values = typeof value === 'string' ? [value] : value;
    for (let i = 0; i < values.length; i += 1) {
      const over = stringOver(typeof value === 'string' ? field : `${field}[${i}]`, values[i]!, INPUT_LIMITS.pathChars);
      if (over !== undefined) return over;
    }
  }
  const entries = Object.entries(fields.env);
  if (entries.length > INPUT_LIMITS.mapEntries) return { field: 'env', size: entries.length, limit: INPUT_LIMITS.mapEntries, unit: 'entries' };
  let total = 0;
  for (const [key, value] of entries) {
    const name = key.length > 64 ? `${key.slice(0, 64)}…` : key;
    const over = stringOver(`env.${name}`, `${key}=${value}`, INPUT_LIMITS.stringChars);
    if (over !== undefined) return over;
    total += Buffer.byteLength(key) + Buffer.byteLength(value) + 2;
  }
  for (const arg of fields.args) if (typeof arg === 'string') total += Buffer.byteLength(arg) + 1;
  if (total > INPUT_LIMITS.commandLineBytes)
    return { field: 'the command line (args and env)', size: total, limit: INPUT_LIMITS.commandLineBytes, unit: 'bytes' };
  return undefined;
}

/**
 * Nesting depth of a JSON text, counted without parsing (brackets outside strings): bounds
 * RecoverTask's driver_state before its decoder walks it. Returns the deepest level reached,
 * stopping early once past `limit`.
 */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i += 1; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth += 1;
      if (depth > deepest) deepest = depth;
      if (deepest > limit) return deepest;
    } else if (c === 0x7d || c === 0x5d) depth -= 1;
  }
  return deepest;
}
