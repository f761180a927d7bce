# A service built by Nix on the client and run by the nix driver.
# scripts/demo.sh replaces FLAKE_DIR with the directory holding examples/web/flake.nix, and
# lists that directory in the client's allow_local_flakes: a path: flake names a directory of
# the client, which the driver refuses unless the operator allows it. Elsewhere, name a remote
# flake or a prebuilt store path instead, e.g.
#   flake      = "github:example/app#web"
#   store_path = "/nix/store/<hash>-web"
job "web" {
  datacenters = ["*"]
  type        = "service"

  group "web" {
    network {
      port "http" {}
    }

    task "server" {
      driver = "nix"

      config {
        flake   = "path:FLAKE_DIR#web"
        command = "bin/web"
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
