/**
 * Finds the init every runc task runs as PID 1 (runc/oci-config.ts says why): `runc_init` from
 * the plugin config, else `tini-static` on the agent's PATH. It must be statically linked: it
 * runs inside the task's root, which holds only the task's closure, not the host's libc.
 */
import { quote } from '../../errors.js';
import { elfInterpreter, findExecutable, isExecutable } from '../../host/which.js';

/** Found, or why not: `cause` and `fix` apart, and `problem` as `<cause>; fix: <fix>` (health descriptions). */
export type InitLookup =
  | { readonly found: true; readonly path: string }
  | { readonly found: false; readonly cause: string; readonly fix: string; readonly problem: string };

const FIX =
  'install tini-static (Debian/Ubuntu: apt-get install tini; NixOS: pkgsStatic.tini) or set runc_init in the plugin "nix" config to a statically linked init';

const missing = (cause: string): InitLookup => ({ found: false, cause, fix: FIX, problem: `${cause}; fix: ${FIX}` });

export function findRuncInit(configured: string, pathEnv: string | undefined): InitLookup {
  const path = configured !== '' ? configured : findExecutable('tini-static', { pathEnv: pathEnv ?? '' });
  if (path === undefined) return missing("tini-static not found on the agent's PATH (runc tasks need a static init)");
  if (!isExecutable(path)) return missing(`runc_init ${quote(path)} is not an executable file`);
  const interpreter = elfInterpreter(path);
  if (interpreter !== undefined) {
    return missing(`runc init ${quote(path)} is dynamically linked (loader ${interpreter}) and cannot run inside a closure-only root`);
  }
  return { found: true, path };
}
