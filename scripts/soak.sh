#!/usr/bin/env bash
# The chaos soak (README, "Hardening proof"): the `bastion` binary's tunnels against the
# emulators with hundreds of concurrent connections checking every echoed byte, every fault
# knob cycling, and SIGINT, SIGTERM and SIGKILL (with restarts, and a `bastion aks` editing a
# kubeconfig in place) in the middle. Prints a summary; exit code 1 on any violation.
#
#   scripts/soak.sh [--short] [--release] [bastion-soak options, see --help]
#
# About 2.5 minutes (at most 3); --short, the form CI runs, about 30 s. The debug build is the
# one the tests use; --release soaks the release binary. Logs of every bastion process are in
# target/soak/.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
args=()
for a in "$@"; do
  case "$a" in
    --release) profile=release ;;
    *) args+=("$a") ;;
  esac
done
build=(cargo build -p bastion-cli -p bastion-benches --bin bastion --bin bastion-soak)
if [[ "$profile" == release ]]; then
  build+=(--release)
fi
"${build[@]}"

# The load holds a few thousand sockets in this process (clients, the emulator's both sides).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 8192 2>/dev/null || true

bin="${CARGO_TARGET_DIR:-target}/$profile"
rm -rf target/soak
# The harness bounds itself; this is the hang guard around it.
exec timeout --kill-after=10 330 "$bin/bastion-soak" --bastion "$bin/bastion" --logs target/soak "${args[@]}"
