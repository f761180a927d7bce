# nomad-driver-nix demo: a tiny web server whose whole closure is one statically linked
# busybox (copied to ./busybox/bin/busybox next to this file by scripts/demo.sh) and the
# server's own store path.
# No inputs, no nixpkgs: it builds on a machine without network access.
{
  description = "nomad-driver-nix demo web server";

  outputs = { self }:
    let
      web = system: derivation {
        name = "demo-web";
        inherit system;
        bb = "${./busybox}/bin/busybox";
        builder = "${./busybox}/bin/busybox";
        args = [ "sh" "-c" ''
          PATH=/nonexistent
          $bb mkdir -p $out/bin $out/share/www
          echo '<h1>Hello from a Nix closure, run by Nomad</h1>' > $out/share/www/index.html
          printf '#!%s sh\necho "serving %s on port $NOMAD_PORT_http"\nexec %s httpd -f -v -p "$NOMAD_PORT_http" -h %s/share/www\n' \
            "$bb" "$out" "$bb" "$out" > $out/bin/web
          $bb chmod +x $out/bin/web
        '' ];
      };
      systems = [ "x86_64-linux" "aarch64-linux" ];
    in {
      packages = builtins.listToAttrs (map (system: { name = system; value = { default = web system; web = web system; }; }) systems);
    };
}
