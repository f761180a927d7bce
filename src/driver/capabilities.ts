/**
 * What the driver tells Nomad it can do (DriverCapabilities). Nomad acts on these:
 * - fs_isolation IMAGE: Nomad builds no chroot and puts no host environment into the task;
 *   NOMAD_ALLOC_DIR, NOMAD_TASK_DIR and NOMAD_SECRETS_DIR are /alloc, /local and /secrets, and
 *   the driver binds them into its closure-only root itself;
 * - network isolation HOST and GROUP: host networking, and `bridge` / `cni/*` group networks
 *   whose namespace Nomad creates and the task joins;
 * - mount_configs ANY_MOUNTS: jobs with `volume_mount` are accepted.
 * Pure: no I/O.
 */

export type FsIsolation = 'NONE' | 'CHROOT' | 'IMAGE' | 'UNVEIL';
export type NetworkIsolationMode = 'HOST' | 'GROUP' | 'TASK' | 'NONE';

export interface DriverCapabilities {
  readonly sendSignals: boolean;
  readonly exec: boolean;
  readonly fsIsolation: FsIsolation;
  readonly networkIsolationModes: readonly NetworkIsolationMode[];
  readonly mustCreateNetwork: boolean;
  readonly mountConfigs: 'ANY_MOUNTS' | 'NO_MOUNTS';
  readonly disableLogCollection: boolean;
  readonly dynamicWorkloadUsers: boolean;
}

export const CAPABILITIES: DriverCapabilities = {
  sendSignals: true,
  exec: true,
  fsIsolation: 'IMAGE',
  networkIsolationModes: ['HOST', 'GROUP'],
  mustCreateNetwork: false,
  mountConfigs: 'ANY_MOUNTS',
  disableLogCollection: false,
  dynamicWorkloadUsers: false,
};
