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

# The examples run, against the built-in emulators: a smoke run of each (a few seconds), which
# must end cleanly with no Bastion session left behind.
echo "== examples (smoke run against the emulators)"
cargo build -q -p bastion-examples --examples
examples="${CARGO_TARGET_DIR:-target}/debug/examples"
out="$("$examples/embed_stream")"
grep -q "sessions left in the emulator: 0" <<<"$out" || { echo "$out" >&2; echo "FAILED: embed_stream" >&2; exit 1; }
out="$("$examples/aks_private_cluster")"
grep -q ", 0 session(s) left undeleted" <<<"$out" || { echo "$out" >&2; echo "FAILED: aks_private_cluster" >&2; exit 1; }
# `tunnel` serves until Ctrl-C: one echoed connection through it, then SIGINT.
tunnel_log="$(mktemp)"
"$examples/tunnel" 2>"$tunnel_log" &
tunnel_pid=$!
port=""
for _ in $(seq 1 300); do
  port="$(sed -n 's/^Tunnel is ready, connect on port \([0-9]*\)$/\1/p' "$tunnel_log")"
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$tunnel_log" >&2; kill "$tunnel_pid"; echo "FAILED: the tunnel example did not start" >&2; exit 1; }
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'smoke' >&3
read -r -t 30 -n 5 reply <&3 || true
exec 3>&-
kill -INT "$tunnel_pid"
wait "$tunnel_pid"
[ "$reply" = "smoke" ] || { cat "$tunnel_log" >&2; echo "FAILED: the tunnel example did not echo (got '$reply')" >&2; exit 1; }
grep -q "0 sessions left undeleted" "$tunnel_log" || { cat "$tunnel_log" >&2; echo "FAILED: the tunnel example left sessions" >&2; exit 1; }
rm -f "$tunnel_log"
