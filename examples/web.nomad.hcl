# A service built by Nix on the client and run by the nix driver.
# scripts/demo.sh replaces FLAKE_DIR with the directory holding examples/web/flake.nix.
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
