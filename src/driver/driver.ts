/**
 * NixDriver: the plugin's behaviour behind Nomad's BasePlugin and Driver RPCs, one thin method
 * per call. It knows nothing of gRPC or protobuf (rpc/ translates); it owns the plugin config,
 * the fingerprint loop and the task-event hub.
 */
import { defaultPluginConfig, type PluginConfig } from '../config/plugin-config.js';
import { errorMessage, failure } from '../errors.js';
import { isLevel, type Level } from '../log/hclog-format.js';
import type { Logger } from '../log/logger.js';
import { PLUGIN_VERSION } from '../version.js';
import { CAPABILITIES, type DriverCapabilities } from './capabilities.js';
import { TaskEventHub } from './events.js';
import { evaluateFingerprint, fingerprintChanged, type Fingerprint } from './fingerprint.js';
import type { HostProbe } from './probe-host.js';

export interface NixDriverOptions {
  readonly logger: Logger;
  readonly probe: HostProbe;
  /** Applies the plugin config's log_level (empty: keep the level from the environment). */
  readonly setLogLevel?: (level: Level) => void;
  /** Nomad's builtin drivers re-send their fingerprint every 30 s. */
  readonly fingerprintPeriodMs?: number;
  /** How often health is re-checked, so a change is reported without waiting a full period. */
  readonly healthCheckPeriodMs?: number;
}

/** Facts Nomad passes in SetConfig (absent during the agent's config-validation launch). */
export interface AgentConfig {
  readonly clientMinPort?: number;
  readonly clientMaxPort?: number;
}

export class NixDriver {
  readonly events = new TaskEventHub();
  private readonly logger: Logger;
  private readonly probe: HostProbe;
  private readonly setLogLevel: ((level: Level) => void) | undefined;
  private readonly fingerprintPeriodMs: number;
  private readonly healthCheckPeriodMs: number;
  /** Replaced wholesale by setConfig; read by every call. */
  private currentConfig: PluginConfig = defaultPluginConfig();
  private agent: AgentConfig | undefined;
  private readonly shutdownController = new AbortController();

  constructor(options: NixDriverOptions) {
    this.logger = options.logger;
    this.probe = options.probe;
    this.setLogLevel = options.setLogLevel;
    this.fingerprintPeriodMs = options.fingerprintPeriodMs ?? 30_000;
    this.healthCheckPeriodMs = options.healthCheckPeriodMs ?? 5_000;
  }

  get config(): PluginConfig {
    return this.currentConfig;
  }

  /**
   * True once SetConfig carried the agent's config: only the long-lived plugin instance gets it
   * (the discovery and config-validation launches do not), and only that instance is worth
   * keeping alive for a reattach when the agent dies.
   */
  get servesAgent(): boolean {
    return this.agent !== undefined;
  }

  /** Signals every long-lived stream to end (Shutdown RPC or plugin exit). */
  get shutdownSignal(): AbortSignal {
    return this.shutdownController.signal;
  }

  /**
   * SetConfig: called with the decoded `plugin "nix" { config {} }` block at every launch,
   * twice on the agent's validation launch (without agent config). Must be idempotent.
   */
  setConfig(config: PluginConfig, agent: AgentConfig | undefined): void {
    this.currentConfig = config;
    if (agent !== undefined) this.agent = agent;
    if (config.log_level !== '' && isLevel(config.log_level)) this.setLogLevel?.(config.log_level);
    this.logger.debug('plugin configured', { runtime: config.runtime, state_dir: config.state_dir, agent_config: this.agent !== undefined });
  }

  /** Init (Nomad ≥ 2.0.4): after SetConfig on every dispense; an error would kill the plugin. */
  init(): void {
    this.logger.debug('driver initialised', { version: PLUGIN_VERSION });
  }

  /** Shutdown (Nomad ≥ 2.0.4): best-effort notice before the agent kills the plugin. Tasks keep running. */
  shutdown(): void {
    this.logger.info('driver shutting down; tasks keep running');
    this.shutdownController.abort();
  }

  capabilities(): DriverCapabilities {
    return CAPABILITIES;
  }

  /** The fingerprint as of now; a failing probe becomes an unhealthy fingerprint, never an error. */
  async fingerprint(): Promise<Fingerprint> {
    try {
      return evaluateFingerprint(await this.probe(this.currentConfig));
    } catch (error) {
      this.logger.error('failed to probe the host', { err: errorMessage(error) });
      return {
        attributes: { 'driver.nix': { kind: 'bool', value: true } },
        health: 'unhealthy',
        description: `failed to probe the host: ${errorMessage(error)}`,
      };
    }
  }

  /**
   * The Fingerprint stream: the first fingerprint at once, then one every period and one
   * whenever anything in it changes (checked every healthCheckPeriodMs). Ends when `signal`
   * aborts (Nomad closed the stream) or the driver shuts down.
   */
  async *fingerprints(signal: AbortSignal): AsyncGenerator<Fingerprint> {
    let last: Fingerprint | undefined;
    let lastSentAt = 0;
    while (!signal.aborted && !this.shutdownSignal.aborted) {
      const current = await this.fingerprint();
      const now = Date.now();
      if (fingerprintChanged(last, current) || now - lastSentAt >= this.fingerprintPeriodMs) {
        if (last !== undefined && last.health !== current.health) {
          this.logger.info('driver health changed', { from: last.health, to: current.health, description: current.description });
        }
        last = current;
        lastSentAt = now;
        yield current;
      }
      await sleep(Math.min(this.healthCheckPeriodMs, this.fingerprintPeriodMs), [signal, this.shutdownSignal]);
    }
  }

  /** Task RPCs arrive with the run-tasks work; until then they fail clearly. */
  notImplemented(rpc: string): never {
    throw failure(rpc, `not implemented in nomad-driver-nix ${PLUGIN_VERSION}`, {
      code: 'unimplemented',
      fix: 'upgrade the nix driver plugin',
    });
  }
}

function sleep(ms: number, signals: readonly AbortSignal[]): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    for (const s of signals) s.addEventListener('abort', done, { once: true });
  });
}
