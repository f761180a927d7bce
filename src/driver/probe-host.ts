/**
 * Gathers HostFacts for the fingerprint: the configured nix, the configured runtime, the
 * cgroup layout and our uid. Version probes spawn the binaries, so their answers are cached
 * until the binary file changes.
 */
import { detectCgroups } from '../cgroup/detect.js';
import { fileIdentity } from '../host/which.js';
import { parseNixOption, type PluginConfig } from '../config/plugin-config.js';
import { createNixStoreProbe } from '../nix/store-probe.js';
import { probeNix, type NixProbe } from '../nix/version.js';
import { findExecHelper } from '../runtime/bwrap/helper.js';
import { findRuncInit } from '../runtime/runc/init.js';
import { probeRuntime, type RuntimeProbe } from '../runtime/version.js';
import type { HostFacts } from './fingerprint.js';

export type HostProbe = (config: PluginConfig) => Promise<HostFacts>;

export interface ProbeEnvironment {
  readonly pathEnv: string | undefined;
  readonly euid: () => number;
  readonly cgroupRoot?: string;
  readonly mountinfoPath?: string;
  /** The plugin's environment, as the nix commands it runs get it (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** `--option name value` for each of the plugin's nix_options, as every nix command gets them. */
export function nixOptionArgs(config: PluginConfig): string[] {
  return config.nix_options.flatMap((line) => {
    const [name, value] = parseNixOption(line) ?? ['', ''];
    return ['--option', name, value];
  });
}

/** A HostProbe for the real host, with its own version cache. */
export function createHostProbe(env: ProbeEnvironment): HostProbe {
  const cache = new Map<string, { identity: string; result: NixProbe | RuntimeProbe }>();
  /** Where each binary was found last time; its file identity validates the cached version. */
  const lastPath = new Map<string, string>();
  const nixStore = createNixStoreProbe({ env: env.env ?? process.env });

  async function cached<T extends NixProbe | RuntimeProbe>(key: string, path: string | undefined, run: () => Promise<T>): Promise<T> {
    const identity = path === undefined ? undefined : fileIdentity(path);
    const hit = cache.get(key);
    if (identity !== undefined && hit !== undefined && hit.identity === identity) return hit.result as T;
    const result = await run();
    if (result.found && identity !== undefined) cache.set(key, { identity, result });
    else cache.delete(key);
    return result;
  }

  return async (config) => {
    const [nix, runtime, cgroups] = await Promise.all([
      cached(`nix:${config.nix_bin}`, lastPath.get(`nix:${config.nix_bin}`), () => probeNix({ nixBin: config.nix_bin, pathEnv: env.pathEnv })),
      cached(`runtime:${config.runtime}`, lastPath.get(`runtime:${config.runtime}`), () => probeRuntime(config.runtime, env.pathEnv)),
      detectCgroups({
        ...(env.cgroupRoot === undefined ? {} : { root: env.cgroupRoot }),
        ...(env.mountinfoPath === undefined ? {} : { mountinfoPath: env.mountinfoPath }),
      }),
    ]);
    if (nix.found) lastPath.set(`nix:${config.nix_bin}`, nix.path);
    if (runtime.found) lastPath.set(`runtime:${config.runtime}`, runtime.path);
    const euid = env.euid();
    const store = nix.found ? await nixStore(nix.path, nixOptionArgs(config), euid) : undefined;
    // the runtime's static helper: runc's init, bubblewrap's exec helper
    const init = config.runtime === 'runc' ? findRuncInit(config.runc_init, env.pathEnv) : config.runtime === 'bwrap' ? findExecHelper() : undefined;
    return {
      euid,
      nix: nix.found ? { found: true, path: nix.path, implementation: nix.version.implementation, version: nix.version.version } : nix,
      runtime:
        init !== undefined && !init.found
          ? { found: false, name: runtime.name, problem: runtime.found ? init.problem : `${runtime.problem}; and ${init.problem}` }
          : runtime.found
            ? { found: true, name: runtime.name, version: runtime.version }
            : runtime,
      cgroups: { version: cgroups.version, problem: cgroups.problem },
      ...(store === undefined ? {} : { nixStore: store }),
    };
  };
}
