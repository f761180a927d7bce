/**
 * Finds the static helper that runs last in an exec into a bubblewrap task (runtime/bwrap/exec.ts,
 * native/nix-exec.c): `npm run build` compiles it to dist/native/nix-exec, next to the plugin's
 * own build output. It must be statically linked: it runs inside the task's root, which holds
 * only the task's closure, not the host's libc.
 */
import { fileURLToPath } from 'node:url';
import { quote } from '../../errors.js';
import { elfInterpreter, isExecutable } from '../../host/which.js';

/** Found, or why not: `cause` and `fix` apart, and `problem` as `<cause>; fix: <fix>` (health descriptions). */
export type HelperLookup =
  | { readonly found: true; readonly path: string }
  | { readonly found: false; readonly cause: string; readonly fix: string; readonly problem: string };

/** dist/native/nix-exec, from dist/src/runtime/bwrap/helper.js. */
export const EXEC_HELPER_PATH = fileURLToPath(new URL('../../../native/nix-exec', import.meta.url));

const FIX =
  "install gcc and the static libc (Debian/Ubuntu: apt-get install gcc libc6-dev) and run `npm run build` in the plugin's checkout, which compiles native/nix-exec.c";

/** The helper at `path`, or the problem (with its fix) that makes bubblewrap tasks unable to exec. */
export function findExecHelper(path: string = EXEC_HELPER_PATH): HelperLookup {
  const missing = (cause: string, fix: string): HelperLookup => ({ found: false, cause, fix, problem: `${cause}; fix: ${fix}` });
  if (!isExecutable(path))
    return missing(
      `the exec helper ${quote(path)} is missing or not executable (nomad alloc exec, script checks and change scripts of bubblewrap tasks need it)`,
      FIX,
    );
  const interpreter = elfInterpreter(path);
  if (interpreter !== undefined)
    return missing(
      `the exec helper ${quote(path)} is dynamically linked (loader ${interpreter}) and cannot run inside a closure-only root`,
      `${FIX} with -static`,
    );
  return { found: true, path };
}
