/**
 * The part of the OCI runtime spec (config.json, runtime-spec 1.0.2) the driver writes. Field
 * names follow the spec exactly; optional fields are left out rather than set to empty values.
 * Types only.
 */
export interface OciSpec {
  readonly ociVersion: string;
  readonly root: { readonly path: string; readonly readonly: boolean };
  readonly process: OciProcess;
  readonly hostname?: string;
  readonly mounts: readonly OciMount[];
  readonly linux: OciLinux;
}

export interface OciProcess {
  readonly terminal: boolean;
  readonly user: { readonly uid: number; readonly gid: number; readonly additionalGids?: readonly number[] };
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  readonly capabilities: {
    readonly bounding: readonly string[];
    readonly effective: readonly string[];
    readonly inheritable: readonly string[];
    readonly permitted: readonly string[];
    readonly ambient: readonly string[];
  };
  readonly noNewPrivileges: boolean;
  /** oom_score_adj of the container's processes; runc leaves its own (inherited) when absent. */
  readonly oomScoreAdj?: number;
}

export interface OciMount {
  readonly destination: string;
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

export interface OciNamespace {
  readonly type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup';
  readonly path?: string;
}

export interface OciLinux {
  readonly namespaces: readonly OciNamespace[];
  readonly cgroupsPath: string;
  readonly resources: OciResources;
  readonly maskedPaths: readonly string[];
  readonly readonlyPaths: readonly string[];
  readonly seccomp: OciSeccomp;
}

/** A device cgroup rule; without type and numbers it applies to every device. */
export interface OciDeviceRule {
  readonly allow: boolean;
  readonly type?: 'a' | 'c' | 'b';
  readonly major?: number;
  readonly minor?: number;
  readonly access: string;
}

export interface OciResources {
  readonly devices: readonly OciDeviceRule[];
  readonly cpu?: { readonly shares?: number; readonly cpus?: string };
  readonly memory?: { readonly limit?: number; readonly reservation?: number };
  readonly pids?: { readonly limit: number };
}

export interface OciSeccomp {
  readonly defaultAction: string;
  readonly architectures: readonly string[];
  readonly syscalls: readonly OciSyscallRule[];
}

export interface OciSyscallRule {
  readonly names: readonly string[];
  readonly action: string;
  readonly errnoRet?: number;
  readonly args?: readonly { readonly index: number; readonly value: number; readonly valueTwo?: number; readonly op: string }[];
}
