#!/usr/bin/env bash
# Builds the Debian package: the release binaries, then the man pages and
# shell completions generated from them, then `cargo deb` packs what the
# [package.metadata.deb] table of Cargo.toml lists. Prints the .deb's path.
#   ./vagrant/package.sh && dpkg -i target/debian/rkt_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-deb >/dev/null || {
  echo "package.sh: cargo-deb is missing; ./vagrant/provision.sh installs it" >&2
  exit 1
}
cargo build --release --bins
tuple=$(rustc -vV | sed -n 's/^host: //p')
bin="target/$tuple/release"
out=target/package
rm -rf "$out"
mkdir -p "$out/man" "$out/completions"
"$bin/rkt" man "$out/man"
"$bin/rkt" completion bash >"$out/completions/rkt"
"$bin/rkt" completion zsh >"$out/completions/_rkt"
"$bin/rkt" completion fish >"$out/completions/rkt.fish"
# The upstream changelog, where Debian's policy puts it.
gzip -9n <CHANGELOG.md >"$out/changelog.gz"
# cargo-deb finds the binaries under target/<tuple>/release for --target.
cargo deb --no-build --target "$tuple" --output target/debian/ >/dev/null
ls -1 target/debian/rkt_*.deb | tail -n 1
