#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration (against the emulators over real TLS),
# the CLI's end-to-end tests, and the doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo nextest run --workspace --all-features --no-fail-fast
cargo test --workspace --all-features --doc
