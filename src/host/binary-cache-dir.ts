/**
 * Checks a binary-cache directory a job supplied (the task option closure_cache, e.g. an
 * artifact unpacked into `local/`) before Nix, as root, reads it as a `file://` substituter.
 *
 * Why: signatures cover a narinfo's store path, NAR hash, size and references, not its `URL`,
 * and Nix opens `<dir>/<URL>` as given. A job could point a URL, or a symlink, at a host file
 * (its content never reaches the store, since its hash would have to match the signed one) or
 * at a FIFO that blocks Nix forever. So the directory may hold only regular files and
 * directories, and every narinfo's URL must be `nar/<name>`, a regular file in it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { entryKind, listEntries } from './fs.js';

/** Largest narinfo read (real ones are well under 4 KiB). */
const MAX_NARINFO_BYTES = 64 * 1024;
const NAR_URL = /^nar\/[A-Za-z0-9._+-]+$/;

/**
 * Why `dir` (resolved, absolute) is not a plain binary-cache directory, as a cause to follow
 * the directory's name (`is not a directory`, `holds "nar/x.nar", which is a symlink; …`);
 * undefined when it is one.
 */
export async function binaryCacheDirProblem(dir: string): Promise<string | undefined> {
  if ((await entryKind(dir)) !== 'directory') return 'is not a directory';
  if ((await entryKind(join(dir, 'nix-cache-info'))) !== 'file')
    return 'has no nix-cache-info file: it is not a binary cache as nix copy --to file://… writes it';
  const top = await listEntries(dir);
  const nars = (await entryKind(join(dir, 'nar'))) === 'directory' ? await listEntries(join(dir, 'nar')) : [];
  for (const [where, entries] of [
    ['', top],
    ['nar/', nars],
  ] as const) {
    const odd = entries.find((e) => e.kind === 'symlink' || e.kind === 'other');
    if (odd !== undefined)
      return `holds ${JSON.stringify(`${where}${odd.name}`)}, which is ${odd.kind === 'symlink' ? 'a symlink' : 'not a regular file or directory'}; a closure cache holds only files and directories`;
  }
  const narFiles = new Set(nars.filter((e) => e.kind === 'file').map((e) => `nar/${e.name}`));
  for (const entry of top.filter((e) => e.name.endsWith('.narinfo'))) {
    if (entry.kind !== 'file') return `holds ${JSON.stringify(entry.name)}, which is not a file`;
    const text = (await readFile(join(dir, entry.name))).subarray(0, MAX_NARINFO_BYTES).toString('utf8');
    const url = /^URL: (.*)$/m.exec(text)?.[1]?.trim() ?? '';
    if (!NAR_URL.test(url) || !narFiles.has(url))
      return `holds ${JSON.stringify(entry.name)}, whose URL ${JSON.stringify(url)} is not a file nar/<name> of the closure cache`;
  }
  return undefined;
}
