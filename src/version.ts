/**
 * Identity of this plugin as Nomad sees it. The name is the file name in plugin_dir, the
 * `plugin "nix"` block label, PluginInfo.name and the `driver = "nix"` value in jobs: all four
 * must agree (Nomad keys plugins by the name PluginInfo reports).
 */
export const PLUGIN_NAME = 'nix';

/** Semver of this plugin; Nomad parses it (the highest version wins between duplicates). */
export const PLUGIN_VERSION = '0.1.0';

/** The only driver API version Nomad's client speaks (plugins/drivers ApiVersion010). */
export const DRIVER_API_VERSION = 'v0.1.0';

/**
 * Version of the driver_state blob we hand Nomad in every TaskHandle. 0 is reserved by Nomad
 * for pre-0.9 handles.
 */
export const TASK_HANDLE_VERSION = 1;
