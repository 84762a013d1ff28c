#!/usr/bin/env bash
# The test command: provision, build, lint, run every test (as root; each
# integration test runs in a throwaway host of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
./vagrant/provision.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --all-targets
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# The Debian package, which tests/packaging.rs unpacks and runs.
RKT_DEB="$PWD/$(./vagrant/package.sh)"
export RKT_DEB
cargo test --no-fail-fast
