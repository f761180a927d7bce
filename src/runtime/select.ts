/**
 * The runtimes a plugin process can use, by name: the composition root (main.ts) passes
 * `hostRuntimes` to the driver, tests pass a fake. Binaries are looked up on the agent's PATH
 * at every call, so installing one later needs no plugin restart.
 */
import { join } from 'node:path';
import type { PluginConfig } from '../config/plugin-config.js';
import { failure } from '../errors.js';
import { findExecutable } from '../host/which.js';
import { BwrapRuntime } from './bwrap/runtime.js';
import { findRuncInit } from './runc/init.js';
import { RuncRuntime } from './runc/runtime.js';
import type { Runtime } from './runtime.js';

/**
 * Why a runtime is wanted: to start a task (every binary must be there) or to take over and
 * sweep tasks an earlier plugin process launched (only what that needs).
 */
export type RuntimePurpose = 'start task' | 'recover task';

/**
 * `name` (`bwrap` or `runc`, the plugin config's or driver_state's `runtime`) → its Runtime,
 * configured from the plugin config (runc_init, state_dir). For `start task`, a missing binary
 * is a `failed_precondition` DriverError naming it and the fix.
 */
export type RuntimeFactory = (name: string, purpose: RuntimePurpose, config: Pick<PluginConfig, 'runc_init' | 'state_dir'>) => Runtime;

/** The runtimes of this host, their binaries found on `process.env.PATH`. */
export const hostRuntimes: RuntimeFactory = (name, purpose, config) => {
  const path = findExecutable(name, { pathEnv: process.env.PATH ?? '' });
  if (path === undefined && purpose === 'start task') {
    throw failure('start task', `${name} not found on the agent's PATH`, {
      code: 'failed_precondition',
      fix: `install ${name === 'bwrap' ? 'bubblewrap' : name} on the client`,
    });
  }
  if (name === 'bwrap') return new BwrapRuntime(path ?? 'bwrap', findExecutable('nsenter', { pathEnv: process.env.PATH ?? '' }));
  const init = findRuncInit(config.runc_init, process.env.PATH);
  if (!init.found && purpose === 'start task') throw failure('start task', init.cause, { code: 'failed_precondition', fix: init.fix });
  return new RuncRuntime({
    runcPath: path ?? 'runc',
    initPath: init.found ? init.path : '/usr/bin/tini-static',
    runcRoot: join(config.state_dir, 'runc'),
    shellPath: findExecutable('sh', { pathEnv: '/bin:/usr/bin' }) ?? '/bin/sh',
  });
};
