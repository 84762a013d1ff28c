#!/usr/bin/env bash
# Provisions a Debian machine for building and testing rkt. Idempotent; used
# by CI (.ci/run), by the Vagrantfile, and by the README's commands.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# libc6-dev: the static glibc the binaries link (.cargo/config.toml).
pkgs=(busybox-static nftables iproute2 dnsmasq-base containernetworking-plugins util-linux iptables ca-certificates curl gcc libc6-dev jq python3 podman runc man-db systemd containerd zsh fish lintian)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Rust 1.95 or later (the build names its target "host-tuple"); rustup's
# toolchain in ~/.cargo/bin comes first on the scripts' PATH.
rust_ok() {
  local c v
  for c in "$HOME/.cargo/bin/cargo" "$(command -v cargo || true)"; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    v=$("$c" --version | awk '{print $2}')
    v=${v#1.}
    [ "${v%%.*}" -ge 95 ] 2>/dev/null && return 0
  done
  return 1
}
if ! rust_ok; then
  if [ -x "$HOME/.cargo/bin/rustup" ]; then
    "$HOME/.cargo/bin/rustup" toolchain install stable --profile minimal --component clippy,rustfmt
    "$HOME/.cargo/bin/rustup" default stable
  else
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
  fi
fi
# cargo-deb packs the Debian package (vagrant/package.sh); built once.
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo deb --version 2>/dev/null | grep -q '^cargo-deb 3\.8\.'; then
  cargo install cargo-deb --version 3.8.0 --locked --quiet
fi
