/**
 * go-plugin's handshake as Nomad uses it (hashicorp/nomad plugins/base/plugin.go and
 * hashicorp/go-plugin server.go). Pure: no I/O.
 */

export const MAGIC_COOKIE_KEY = 'NOMAD_PLUGIN_MAGIC_COOKIE';
export const MAGIC_COOKIE_VALUE = 'e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255';

/** go-plugin's own protocol version. */
export const CORE_PROTOCOL_VERSION = 1;
/** Nomad's plugin protocol version (the only one since Nomad 0.9). */
export const APP_PROTOCOL_VERSION = 2;

/** Printed when the binary is run by hand, the way go-plugin binaries refuse to run. */
export const NOT_A_PROGRAM_MESSAGE = [
  'This binary is a plugin: the Nix task driver for HashiCorp Nomad. It is not meant to be run directly.',
  'Put it in the Nomad client\'s plugin_dir and add a plugin "nix" {} block to the agent configuration;',
  'the agent starts it when it needs it.',
].join('\n');

export function hasMagicCookie(env: NodeJS.ProcessEnv): boolean {
  return env[MAGIC_COOKIE_KEY] === MAGIC_COOKIE_VALUE;
}

/**
 * Checks PLUGIN_PROTOCOL_VERSIONS (the versions the host accepts, comma-separated). Returns a
 * problem when the host accepts versions but not ours; an absent list means "any".
 */
export function protocolVersionProblem(env: NodeJS.ProcessEnv): string | undefined {
  const list = env.PLUGIN_PROTOCOL_VERSIONS;
  if (list === undefined || list.trim() === '') return undefined;
  const versions = list.split(',').map((v) => Number.parseInt(v.trim(), 10));
  if (versions.includes(APP_PROTOCOL_VERSION)) return undefined;
  return `the host accepts plugin protocol versions ${list}, this plugin speaks only ${APP_PROTOCOL_VERSION}; use a Nomad client of version 0.9 or newer`;
}

/**
 * The one line that must be the plugin's first output on stdout:
 * `CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT` with an empty CERT (Nomad never turns on AutoMTLS).
 */
export function handshakeLine(socketPath: string): string {
  return `${CORE_PROTOCOL_VERSION}|${APP_PROTOCOL_VERSION}|unix|${socketPath}|grpc|\n`;
}
