/**
 * Binary caches for tests, made on this machine (no cache is reachable here): a signing key,
 * a cache directory as `nix copy --to file://…` writes it (NARs uncompressed, so a test can
 * alter one), signatures added in the cache, and a loopback HTTP server serving the directory
 * as Nix's `http://` substituters read it. Commands are the ones Nix 2.8 through 2.2x and Lix
 * all have: `nix-store --generate-binary-cache-key`, `nix copy`, `nix store sign`,
 * `nix path-info --json`, `nix-store --delete`.
 *
 *   const key = generateKey(dir, 'test-1');          // key.publicKey → trusted_public_keys
 *   const cache = makeCacheDir(dir);
 *   pushToCache(cache, [path], { sign: key });
 *   const server = await serveCache(cache);          // server.url → substituters
 *   deleteFromStore(path);                           // so the client must substitute it
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join, normalize } from 'node:path';

const NIX_COMMAND = ['--extra-experimental-features', 'nix-command'] as const;

const run = (file: string, args: readonly string[]): string => {
  try {
    return execFileSync(file, [...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 }).trim();
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(`${file} ${args.join(' ')} failed: ${stderr}`, { cause: error });
  }
};

export interface SigningKey {
  /** The key's name, e.g. `test-1`. */
  readonly name: string;
  readonly secretKeyFile: string;
  /** `name:base64`, as trusted_public_keys takes it. */
  readonly publicKey: string;
}

/** A new Ed25519 key pair `name` in `dir` (`nix-store --generate-binary-cache-key`). */
export function generateKey(dir: string, name: string): SigningKey {
  mkdirSync(dir, { recursive: true });
  const secretKeyFile = join(dir, `${name}.sec`);
  const publicKeyFile = join(dir, `${name}.pub`);
  run('nix-store', ['--generate-binary-cache-key', name, secretKeyFile, publicKeyFile]);
  return { name, secretKeyFile, publicKey: readFileSync(publicKeyFile, 'utf8').trim() };
}

/** `dir` as an empty binary cache directory; returns it. */
export function makeCacheDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

const fileStore = (cacheDir: string) => `file://${cacheDir}`;

/**
 * Copies `paths` with their closures into the cache (`nix copy`, NARs uncompressed) and, with
 * `sign`, signs each of them there (`nix store sign --store file://…`; the closure's other
 * paths stay as they were).
 */
export function pushToCache(cacheDir: string, paths: readonly string[], options: { sign?: SigningKey } = {}): void {
  run('nix', ['copy', ...NIX_COMMAND, '--option', 'substituters', '', '--to', `${fileStore(cacheDir)}?compression=none`, ...paths]);
  if (options.sign !== undefined)
    run('nix', ['store', 'sign', ...NIX_COMMAND, '--key-file', options.sign.secretKeyFile, '--store', fileStore(cacheDir), ...paths]);
}

/** The narinfo fields of `path` in the cache (`StorePath`, `URL`, `NarHash`, `FileSize`, `Sig`, …; the last of repeated keys). */
export function narinfo(cacheDir: string, path: string): Record<string, string> {
  const hash = path.slice('/nix/store/'.length, '/nix/store/'.length + 32);
  const fields: Record<string, string> = {};
  for (const line of readFileSync(join(cacheDir, `${hash}.narinfo`), 'utf8').split('\n')) {
    const colon = line.indexOf(': ');
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 2);
  }
  return fields;
}

/**
 * Alters the cached NAR of `path` without breaking its structure: the first occurrence of
 * `text` (a file's content) becomes `replacement` (same length). The narinfo is left as it
 * was, so its NarHash no longer matches.
 */
export function tamperNar(cacheDir: string, path: string, text: string, replacement: string): void {
  if (text.length !== replacement.length) throw new Error('tamperNar: the replacement must have the same length');
  const file = join(cacheDir, narinfo(cacheDir, path).URL ?? '');
  const nar = readFileSync(file);
  const at = nar.indexOf(text);
  if (at === -1) throw new Error(`tamperNar: ${JSON.stringify(text)} is not in ${file}`);
  nar.write(replacement, at, 'latin1');
  writeFileSync(file, nar);
}

/** The NAR hash (SRI) of a valid store path, as `nix path-info --json` reports it. */
export function narHashOf(path: string): string {
  const parsed = JSON.parse(run('nix', ['path-info', '--json', ...NIX_COMMAND, path])) as unknown;
  const info = Array.isArray(parsed) ? parsed[0] : (parsed as Record<string, unknown>)[path];
  return String((info as { narHash?: unknown }).narHash);
}

/** Deletes `path` from the local store (it must have no GC root and no referrer). */
export function deleteFromStore(path: string): void {
  run('nix-store', ['--delete', path]);
}

/** Whether anything of `path` is on disk (a valid path, or what a failed import left). */
export const onDisk = (path: string): boolean => existsSync(path);

/** Whether Nix considers `path` valid. */
export function isValid(path: string): boolean {
  try {
    run('nix-store', ['--check-validity', path]);
    return true;
  } catch {
    return false;
  }
}

export interface CacheServer {
  /** `http://<host>:<port>` (host 127.0.0.1 unless given): a substituter URL. */
  readonly url: string;
  /** Paths requested so far (`/nix-cache-info`, `/<hash>.narinfo`, `/nar/…`), in order. */
  readonly requests: readonly string[];
  /** The same requests with the client's address (e.g. a network namespace's). */
  readonly requestLog: readonly { readonly path: string; readonly from: string }[];
  close(): Promise<void>;
}

/**
 * Serves `cacheDir` over HTTP on a free port of `host` (default loopback; a test's own network
 * namespace bridge address for clients in other namespaces): GET and HEAD, 404 for what is not there.
 */
export async function serveCache(cacheDir: string, host = '127.0.0.1'): Promise<CacheServer> {
  const requests: string[] = [];
  const requestLog: { path: string; from: string }[] = [];
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/');
    requests.push(path);
    requestLog.push({ path, from: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '') });
    const file = normalize(join(cacheDir, path));
    if (!file.startsWith(`${cacheDir}/`) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': statSync(file).size });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://${host}:${port}`,
    requests,
    requestLog,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
