/**
 * The seccomp profile every runc task gets. A deny list, not an allow list: the task's own
 * program is arbitrary Nix-built software, so the default is to allow, and the syscalls below —
 * kernel modules, kexec, mounting, namespaces, keyrings, BPF, perf, io_uring, clock and swap
 * changes — fail with EPERM. Most of them already need capabilities an unprivileged task lacks; the list
 * matters for root tasks and for what a nested user namespace would grant, which is why
 * `unshare`, `setns` and `clone(CLONE_NEWUSER)` are refused too (bubblewrap tasks may create
 * nested user namespaces; README "Runtimes"). `clone3` answers ENOSYS, as in Docker's profile,
 * because its flags live in memory seccomp cannot inspect: libc then falls back to `clone`.
 * io_uring (setup, enter, register) is refused as Docker, containerd and Podman refuse it by
 * default: its operations run in kernel workers that seccomp never sees, and it has been a
 * steady source of kernel privilege escalations. Programs fall back to ordinary syscalls.
 * Pure data.
 */
import type { OciSeccomp } from './oci-types.js';

const EPERM = 1;
const ENOSYS = 38;
const CLONE_NEWUSER = 0x10000000;

/** Syscalls no task needs. Names unknown to an architecture are ignored by runc. */
export const DENIED_SYSCALLS: readonly string[] = [
  '_sysctl',
  'acct',
  'add_key',
  'bpf',
  'clock_adjtime',
  'clock_settime',
  'create_module',
  'delete_module',
  'finit_module',
  'fsconfig',
  'fsmount',
  'fsopen',
  'fspick',
  'get_kernel_syms',
  'init_module',
  'io_uring_enter',
  'io_uring_register',
  'io_uring_setup',
  'ioperm',
  'iopl',
  'kexec_file_load',
  'kexec_load',
  'keyctl',
  'lookup_dcookie',
  'mount',
  'mount_setattr',
  'move_mount',
  'name_to_handle_at',
  'nfsservctl',
  'open_by_handle_at',
  'open_tree',
  'perf_event_open',
  'pivot_root',
  'query_module',
  'quotactl',
  'reboot',
  'request_key',
  'setns',
  'settimeofday',
  'stime',
  'swapoff',
  'swapon',
  'sysfs',
  'syslog',
  'umount',
  'umount2',
  'unshare',
  'uselib',
  'userfaultfd',
  'ustat',
  'vm86',
  'vm86old',
];

/** Node's `process.arch` → the seccomp architectures a task of that machine may use. */
const ARCHITECTURES: Readonly<Record<string, readonly string[]>> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
};

/** The profile for a host of architecture `arch` (Node's name); unknown ones get the native arch only. */
export function defaultSeccompProfile(arch: string): OciSeccomp {
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: [...(ARCHITECTURES[arch] ?? [])],
    syscalls: [
      { names: [...DENIED_SYSCALLS], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      {
        names: ['clone'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EPERM,
        // (flags & CLONE_NEWUSER) == CLONE_NEWUSER; flags are argument 0 on x86 and arm
        args: [{ index: 0, value: CLONE_NEWUSER, valueTwo: CLONE_NEWUSER, op: 'SCMP_CMP_MASKED_EQ' }],
      },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
    ],
  };
}
