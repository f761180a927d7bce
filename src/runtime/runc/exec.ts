/**
 * A command exec'd into a running runc task: the OCI process `runc exec --process` reads, and
 * runc's arguments. Pure: no I/O; the runc adapter writes the file.
 *
 * `runc exec` is runc's own way into a container, and it confines the command as the task's
 * command is confined: runc joins the container's namespaces and cgroup, applies the
 * container's seccomp filter, and takes user, capabilities and no_new_privs from this process
 * (the same values oci-config.ts gives the task). With `terminal` runc opens the terminal
 * inside the container (its /dev/pts) and relays it to its own, passing window-size changes on.
 */
import { validateProcessSpec } from '../process-spec.js';
import type { ExecSpec } from '../runtime.js';
import type { OciProcess } from './oci-types.js';

/** The process of `spec` as `runc exec --process <file>` takes it. */
export function renderExecProcess(spec: ExecSpec): OciProcess {
  validateProcessSpec('exec in task', spec);
  const caps = [...spec.capabilities];
  return {
    terminal: spec.tty,
    user: { uid: spec.uid, gid: spec.gid },
    args: [...spec.argv],
    env: Object.keys(spec.env)
      .sort()
      .map((name) => `${name}=${spec.env[name] ?? ''}`),
    cwd: spec.cwd,
    capabilities: { bounding: caps, effective: caps, inheritable: [], permitted: caps, ambient: [] },
    noNewPrivileges: true,
  };
}

/** `runc --root <root> exec --process <file> <id>`: the exec stays in the foreground and exits with the command's status. */
export function execArgs(runcRoot: string, processFile: string, containerId: string): string[] {
  return ['--root', runcRoot, 'exec', '--process', processFile, containerId];
}
