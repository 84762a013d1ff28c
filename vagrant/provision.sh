#!/usr/bin/env bash
# Provisions a Debian machine for building and testing rkt. Idempotent; used
# by CI (.ci/run), by the Vagrantfile, and by the README's commands.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(busybox-static nftables iproute2 dnsmasq-base containernetworking-plugins util-linux iptables ca-certificates curl gcc jq python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
fi
