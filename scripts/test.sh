#!/usr/bin/env bash
# Runs every check and test Sloth has, installing what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_build_deps

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo build --bins" >&2
cargo build --workspace --bins --quiet
echo "== cargo test" >&2
cargo test --workspace --quiet -- --test-threads "${SLOTH_TEST_THREADS:-4}"
