/**
 * How a runc task is supervised without the plugin, and how its result is read back. Pure:
 * script text and parsers; the adapter (runc/runtime.ts) runs and reads them.
 *
 * runc does not record a container's exit status: once the container's init is reaped the
 * status is gone, and a detached container (`runc run -d`) is reaped by the host's init, not by
 * whoever asks later. So every task gets a monitor: a POSIX shell (the host's /bin/sh, about
 * 1 MiB) that runs `runc run` in the foreground and, when it returns, writes runc's exit code
 * to `exit.json` in the task's state dir (temp file + rename: a reader sees all or nothing).
 * The monitor runs in its own session, is not a child of the plugin after a plugin restart,
 * and is never signalled by the driver; signals go to the container's init.
 *
 * Files in the task's state dir (the bundle):
 *   config.json   the OCI config (runc/oci-config.ts)
 *   rootfs/       the empty root the plan's mounts go on
 *   init.pid      the container init's host pid, written by runc once the container started
 *   runc.log      runc's own log, JSON lines (read to explain a failed start)
 *   exit.json     `{"exit-code": N}`, written by the monitor when `runc run` returned
 *
 * In the foreground runc relays the container's stdout/stderr through pipes to its own, which
 * are Nomad's log FIFOs. `--keep` leaves the stopped container (its record and cgroup, with the
 * OOM-kill counter) until the driver has read the result; DestroyTask then runs `runc delete`.
 */

export const CONFIG_FILE = 'config.json';
export const ROOTFS_DIR = 'rootfs';
export const PID_FILE = 'init.pid';
export const LOG_FILE = 'runc.log';
export const EXIT_FILE = 'exit.json';

/** The monitor script; run as `sh -c SCRIPT runc-monitor <runc> <runc root> <bundle> <container id>`. */
export const MONITOR_SCRIPT = [
  'runc="$1"; root="$2"; bundle="$3"; id="$4"',
  '"$runc" --root "$root" --log "$bundle/runc.log" --log-format json run --keep --bundle "$bundle" --pid-file "$bundle/init.pid" "$id" </dev/null',
  'code=$?',
  'printf \'{"exit-code": %d}\\n\' "$code" > "$bundle/exit.json.tmp" && mv -f "$bundle/exit.json.tmp" "$bundle/exit.json"',
].join('\n');

export function monitorArgs(runcPath: string, runcRoot: string, bundle: string, containerId: string): string[] {
  return ['-c', MONITOR_SCRIPT, 'runc-monitor', runcPath, runcRoot, bundle, containerId];
}

/** `{"exit-code": 5}` → 5; anything else → undefined. */
export function parseExitFile(text: string): number | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null) return undefined;
    const code = (value as Record<string, unknown>)['exit-code'];
    return typeof code === 'number' && Number.isSafeInteger(code) && code >= 0 ? code : undefined;
  } catch {
    return undefined;
  }
}

/** runc's pid file: a decimal pid, no newline. */
export function parsePidFile(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) return undefined;
  const pid = Number(trimmed);
  return pid > 1 ? pid : undefined;
}

/**
 * The error messages in runc's JSON log (`{"level":"error","msg":"…","time":"…"}` per line),
 * oldest first; non-JSON lines are kept as they are.
 */
export function runcLogErrors(text: string): string[] {
  const errors: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const entry = JSON.parse(line) as { level?: unknown; msg?: unknown };
      if ((entry.level === 'error' || entry.level === 'fatal') && typeof entry.msg === 'string') errors.push(entry.msg);
    } catch {
      errors.push(line.trim());
    }
  }
  return errors;
}
