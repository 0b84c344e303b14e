#!/usr/bin/env bash
# Runs every check and test Sloth has, installing what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_build_deps
ensure_test_deps

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo build --bins" >&2
cargo build --workspace --bins --quiet
echo "== cargo build -p sloth-sdk --examples" >&2
cargo build -p sloth-sdk --examples --quiet
echo "== cargo doc" >&2
# Broken or private intra-doc links, bare URLs and stray HTML in doc comments
# fail the run (under a minute with a warm target).
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --quiet
echo "== cargo test" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --quiet --no-fail-fast -- --test-threads "${SLOTH_TEST_THREADS:-4}" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run: cargo prints a result per test binary,
# the last of which is often an empty doc-test run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
