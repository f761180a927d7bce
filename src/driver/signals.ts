/** Signal names as Nomad sends them (kill_signal, `nomad alloc signal -s`) → Node's names. Pure. */
import { failure, quote } from '../errors.js';

const SIGNALS = new Set<string>([
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGILL',
  'SIGTRAP',
  'SIGABRT',
  'SIGBUS',
  'SIGFPE',
  'SIGKILL',
  'SIGUSR1',
  'SIGSEGV',
  'SIGUSR2',
  'SIGPIPE',
  'SIGALRM',
  'SIGTERM',
  'SIGCHLD',
  'SIGCONT',
  'SIGSTOP',
  'SIGTSTP',
  'SIGTTIN',
  'SIGTTOU',
  'SIGURG',
  'SIGXCPU',
  'SIGXFSZ',
  'SIGVTALRM',
  'SIGPROF',
  'SIGWINCH',
  'SIGIO',
  'SIGPWR',
  'SIGSYS',
]);

/** `SIGUSR1`, `sigusr1` or `USR1` → `SIGUSR1`; anything else is an invalid argument. */
export function parseSignal(name: string): NodeJS.Signals {
  const upper = name.trim().toUpperCase();
  const full = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  if (!SIGNALS.has(full)) {
    throw failure('parse signal', `${quote(name)} is not a signal name`, { code: 'invalid_argument', fix: 'use a name such as SIGTERM, SIGHUP or SIGUSR1' });
  }
  return full as NodeJS.Signals;
}
