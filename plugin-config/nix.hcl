# Client agent configuration for the nix task driver plugin.
#
# 1. Put the plugin executable `nix` (the single file of the release tarball, or
#    build/plugins/nix after `npm run build` in a checkout) in the client's plugin_dir
#    (default <data_dir>/plugins), or start the agent with -plugin-dir.
#    scripts/install-service.sh does steps 1 and 2 on a systemd host.
# 2. Add this block to the client's agent configuration. The block label must be "nix":
#    Nomad only loads plugins that a plugin block names.
# 3. Jobs then use `driver = "nix"`. Check the node with:
#      nomad node status -self -verbose | grep driver.nix
#
# Every option is optional; the values below are the defaults.
plugin "nix" {
  config {
    # Program that launches tasks: "bwrap" (bubblewrap) or "runc".
    runtime = "bwrap"

    # Directory holding nix and nix-store; empty = look them up on the agent's PATH.
    nix_bin = ""

    # Extra Nix settings, one nix.conf line each, for every nix command the driver runs,
    # e.g. ["max-jobs = 4"]. Not the trust settings below (substituters, keys, require-sigs).
    nix_options = []

    # Binary caches and the keys whose signatures they must carry (README "Shipping
    # closures"). Unset = the client's nix.conf; [] = no cache at all (offline clients).
    # substituters = ["https://cache.example.org"]
    # trusted_public_keys = ["cache.example.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="]
    # A path fetched from a cache must be signed by a trusted key, whatever nix.conf says.
    require_signatures = true

    # Evaluation policy: may jobs make this client evaluate and build flakes (as root)?
    # false = store paths only (production clients). flake_namespaces = Nomad namespaces
    # allowed to (empty = all); allowed_flakes = reference prefixes (empty = any).
    allow_flakes = true
    flake_namespaces = []
    allowed_flakes = []

    # Tasks run as their `user`, else as nobody. Root tasks need this switched on.
    allow_root = false

    # Capabilities a task may have (its cap_add must be listed; a root task keeps those of
    # this default that are listed). Names with or without CAP_, any case; "ALL" = every one.
    allow_caps = ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                  "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]

    # Bind the volumes Nomad mounts into tasks (volume_mount of host/CSI volumes, device
    # plugins' mounts). false = a task with any mount fails.
    allow_volumes = true

    # Host directories whose flakes jobs may name with path: or git+file: (Nix copies such a
    # flake into the world-readable store). Empty = none: jobs use remote flakes (github:, …)
    # or store paths. Symlinks are resolved before the check; a flake in or around Nomad's
    # allocation directories is refused even when listed. Never "/" or the store.
    # allow_local_flakes = ["/srv/flakes"]
    allow_local_flakes = []

    # Per-task state files and cached store views (same filesystem as /nix/store).
    state_dir = "/var/lib/nomad-driver-nix"

    # One Nix GC root per running task lives here, so nix-store --gc keeps closures in use.
    gc_roots_dir = "/nix/var/nix/gcroots/nomad-driver-nix"

    # Level of the plugin's own log lines: "", "trace", "debug", "info", "warn", "error".
    # Empty = NOMAD_DRIVER_NIX_LOG_LEVEL from the agent's environment, else "info".
    log_level = ""
  }
}

# `nomad alloc status -stats` and /v1/client/allocation/<id>/stats: Nomad's client opens the
# plugin's TaskStats stream only when this is on (client/allocrunner/taskrunner/stats_hook.go
# skips collection otherwise; `nomad agent -dev` turns it on, a service's config does not).
telemetry {
  publish_allocation_metrics = true
}

client {
  # Bridge networking (group network mode "bridge") needs the CNI reference plugins;
  # Debian's containernetworking-plugins installs them here.
  cni_path = "/usr/lib/cni"
}
