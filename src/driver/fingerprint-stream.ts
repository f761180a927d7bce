/** The Fingerprint RPC's values: one probe of the host, and the stream Nomad keeps open. */
import type { PluginConfig } from '../config/plugin-config.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { evaluateFingerprint, fingerprintChanged, type Fingerprint } from './fingerprint.js';
import type { HostProbe } from './probe-host.js';
import { sleep } from './sleep.js';

/** The fingerprint as of now; a failing probe becomes an unhealthy fingerprint, never an error. */
export async function probeFingerprint(probe: HostProbe, config: PluginConfig, logger: Logger): Promise<Fingerprint> {
  try {
    return evaluateFingerprint(await probe(config));
  } catch (error) {
    logger.error('failed to probe the host', { err: errorMessage(error) });
    return {
      attributes: { 'driver.nix': { kind: 'bool', value: true } },
      health: 'unhealthy',
      description: `failed to probe the host: ${errorMessage(error)}`,
    };
  }
}

export interface FingerprintSchedule {
  /** Re-sent every period (Nomad's builtin drivers: 30 s). */
  readonly periodMs: number;
  /** How often health is re-checked, so a change is reported without waiting a full period. */
  readonly checkPeriodMs: number;
}

/**
 * The first fingerprint at once, then one every period and one whenever anything in it
 * changes (checked every checkPeriodMs). Ends when any of `signals` aborts (Nomad closed the
 * stream, or the driver shuts down).
 */
export async function* fingerprintStream(
  current: () => Promise<Fingerprint>,
  schedule: FingerprintSchedule,
  signals: readonly AbortSignal[],
  logger: Logger,
): AsyncGenerator<Fingerprint> {
  let last: Fingerprint | undefined;
  let lastSentAt = 0;
  while (!signals.some((s) => s.aborted)) {
    const now = await current();
    const at = Date.now();
    if (fingerprintChanged(last, now) || at - lastSentAt >= schedule.periodMs) {
      if (last !== undefined && last.health !== now.health) {
        logger.info('driver health changed', { from: last.health, to: now.health, description: now.description });
      }
      last = now;
      lastSentAt = at;
      yield now;
    }
    await sleep(Math.min(schedule.checkPeriodMs, schedule.periodMs), signals);
  }
}
