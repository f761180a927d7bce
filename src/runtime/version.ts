/** Finds the configured task runtime (bubblewrap or runc) and its version. */
import { runCommand } from '../host/exec.js';
import { findExecutable } from '../host/which.js';
import { HOST_PATH } from './process-spec.js';

export type RuntimeProbe =
  | { readonly found: true; readonly name: string; readonly path: string; readonly version: string }
  | { readonly found: false; readonly name: string; readonly problem: string };

const INSTALL_HINT: Readonly<Record<string, string>> = {
  bwrap: 'install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) or set runtime = "runc" in the plugin "nix" config',
  runc: 'install runc (Debian/Ubuntu: apt-get install runc) or set runtime = "bwrap" in the plugin "nix" config',
};

/** `bubblewrap 0.8.0` → `0.8.0`; `runc version 1.1.5+ds1\ncommit: …` → `1.1.5+ds1`. */
export function parseRuntimeVersion(output: string): string | undefined {
  const match = /^(?:bubblewrap|runc version)\s+(\S+)/m.exec(output.trim());
  return match?.[1];
}

export async function probeRuntime(name: string, pathEnv: string | undefined): Promise<RuntimeProbe> {
  const path = findExecutable(name, { pathEnv: pathEnv ?? '' });
  const hint = INSTALL_HINT[name] ?? `install ${name}`;
  if (path === undefined) return { found: false, name, problem: `${name} not found on the agent's PATH; fix: ${hint}` };
  try {
    // generous: a slow answer only delays a fingerprint, a timeout makes the driver unhealthy
    // (a slow host, e.g. a qemu guest under software emulation, issue 15)
    const { stdout } = await runCommand(path, ['--version'], { timeoutMs: 120_000, env: { PATH: HOST_PATH }, cleanEnv: true });
    const version = parseRuntimeVersion(stdout);
    if (version === undefined) return { found: false, name, problem: `${path} --version printed ${JSON.stringify(stdout.slice(0, 80))}; fix: ${hint}` };
    return { found: true, name, path, version };
  } catch (error) {
    return { found: false, name, problem: `${path} --version failed: ${(error as Error).message}; fix: ${hint}` };
  }
}
