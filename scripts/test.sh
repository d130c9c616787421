#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration (against the emulators over real TLS),
# the CLI's end-to-end tests, and the doc tests. Needs only the Rust toolchain: it uses
# cargo-nextest when the machine has it (installing it when it can), and `cargo test` otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest is not installed; trying to install it (falls back to cargo test)" >&2
  cargo install cargo-nextest --locked >/dev/null 2>&1 || true
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
else
  cargo test --workspace --all-features --no-fail-fast --lib --bins --tests --examples
fi
cargo test --workspace --all-features --doc
