import { HOST_PATH } from '../process-spec.js';

/**
 * The whole environment of every runc process the driver starts (the monitor's `runc run`,
 * `runc exec`, `runc delete`): built here, never copied from the plugin or the task.
 *
 * `GODEBUG=asyncpreemptoff=1`: runc is a Go program, and since Go 1.14 the Go runtime preempts
 * its own threads with SIGURG. A foreground `runc run`/`runc exec` relays every signal it
 * receives to the container's init, and runc 1.1.5 (Debian 12) relays SIGURG too (measured;
 * runc stopped relaying it in its PR #3368, not in every packaged release), so the task got SIGURGs nobody sent (tini forwarded them to the command's process group, and
 * printed `Child was dead when forwarding signal` into the task's stderr when one arrived after
 * the command exited). Measured on a loaded 2-core host: 3 of 8 `runc run`s of 3 s relayed a
 * SIGURG; with this setting 0 of 28. runc needs no asynchronous preemption (it has no long
 * loops without function calls); Go's cooperative preemption still runs. Source: Go 1.14 release
 * notes (runtime), runc issue #3364.
 */
export const RUNC_ENV: Readonly<Record<string, string>> = Object.freeze({ PATH: HOST_PATH, GODEBUG: 'asyncpreemptoff=1' });
