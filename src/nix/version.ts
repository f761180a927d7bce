/**
 * Which Nix the client has. Operators run anything from Debian's 2.8 to current Nix and Lix;
 * the driver only uses commands and flags all of them understand, and reports what it found
 * in the fingerprint (`driver.nix.nix_version`, `driver.nix.nix_implementation`).
 */
import { runCommand } from '../host/exec.js';
import { findExecutable } from '../host/which.js';

export interface NixVersion {
  /** `Nix` or `Lix` (or whatever the binary calls itself). */
  readonly implementation: string;
  readonly version: string;
  readonly major: number;
  readonly minor: number;
}

/** The oldest Nix the driver supports: `nix-store --realise/--query`, `nix build --json`. */
export const MIN_NIX_VERSION = { major: 2, minor: 4 } as const;

/**
 * Parses `nix --version` output: `nix (Nix) 2.8.0`, `nix (Lix, like Nix) 2.91.1`,
 * `nix (Nix) 2.24.10pre…`. Undefined when it is not recognisable.
 */
export function parseNixVersion(output: string): NixVersion | undefined {
  const match = /^nix \(([^)]*)\)\s+(\d+)\.(\d+)(\S*)/m.exec(output.trim());
  if (match === null) return undefined;
  const [, label = '', major = '0', minor = '0', rest = ''] = match;
  const implementation = (label.split(',')[0] ?? label).trim() || 'Nix';
  return { implementation, version: `${major}.${minor}${rest}`, major: Number(major), minor: Number(minor) };
}

export function isSupportedNix(version: NixVersion): boolean {
  return version.major > MIN_NIX_VERSION.major || (version.major === MIN_NIX_VERSION.major && version.minor >= MIN_NIX_VERSION.minor);
}

export type NixProbe = { readonly found: true; readonly path: string; readonly version: NixVersion } | { readonly found: false; readonly problem: string };

/** Looks for `nix` (in `nixBin`, else on `pathEnv`) and asks it for its version. */
export async function probeNix(options: { nixBin: string; pathEnv: string | undefined }): Promise<NixProbe> {
  const where = options.nixBin === '' ? "on the agent's PATH" : `in nix_bin ${JSON.stringify(options.nixBin)}`;
  const path = findExecutable('nix', { dir: options.nixBin, pathEnv: options.pathEnv ?? '' });
  if (path === undefined) {
    return {
      found: false,
      problem: `nix not found ${where}; fix: install Nix (Debian/Ubuntu: apt-get install nix-bin) or set nix_bin in the plugin "nix" config to the directory holding nix`,
    };
  }
  try {
    // generous: a slow answer only delays a fingerprint, a timeout makes the driver unhealthy
    // (over 10 s seen in a qemu guest under software emulation, issue 15)
    const { stdout } = await runCommand(path, ['--version'], { timeoutMs: 120_000 });
    const version = parseNixVersion(stdout);
    if (version === undefined) {
      return {
        found: false,
        problem: `${path} --version printed ${JSON.stringify(stdout.slice(0, 80))}, not a Nix version; fix: point nix_bin at a real Nix installation`,
      };
    }
    if (!isSupportedNix(version)) {
      return {
        found: false,
        problem: `${path} is ${version.implementation} ${version.version}, older than ${MIN_NIX_VERSION.major}.${MIN_NIX_VERSION.minor}; fix: upgrade Nix`,
      };
    }
    return { found: true, path, version };
  } catch (error) {
    return { found: false, problem: `${path} --version failed: ${(error as Error).message}` };
  }
}
