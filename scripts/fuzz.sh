#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 30): the token and data-pod
# response parsers, the in-band HTTP detector, the WebSocket handshake reader, resource ids, and
# the kubeconfig parse / rewrite / restore round trip. See the README, "Hardening proof".
#
#   scripts/fuzz.sh [SECONDS]
#
# cargo-fuzz is installed from crates.io if missing; when that fails the run is SKIPPED, loudly,
# with exit code 0. Stable rustc accepts cargo-fuzz's -Z flags with RUSTC_BOOTSTRAP=1. The
# seeds in fuzz/corpus/<target>/ are read, never written: what the fuzzer finds goes to
# target/fuzz-corpus/<target>/, a crash to fuzz/artifacts/<target>/ (both ignored by git). Exit
# code 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

secs="${1:-30}"
case "$secs" in
  '' | *[!0-9]*)
    echo "error: SECONDS must be a whole number, not \"$secs\" — run: scripts/fuzz.sh [SECONDS]" >&2
    exit 2
    ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  log="$(mktemp)"
  if ! cargo install cargo-fuzz --locked >"$log" 2>&1; then
    tail -n 5 "$log"
    rm -f "$log"
    echo "SKIPPED fuzzing: cargo-fuzz is not installed and \`cargo install cargo-fuzz --locked\` failed"
    exit 0
  fi
  rm -f "$log"
fi

export RUSTC_BOOTSTRAP=1
# The workspace's target directory; the fuzz build has a target triple of its own in it.
target_dir="${CARGO_TARGET_DIR:-$root/target}"
work="$target_dir/fuzz-corpus"
logs="$target_dir/fuzz-logs"
mkdir -p "$work" "$logs"

cd "$root/fuzz"
echo "== cargo fuzz build"
cargo fuzz build --target-dir "$target_dir"
triple="$(rustc -vV | sed -n 's/^host: //p')"
mapfile -t targets < <(cargo fuzz list)

# The binaries just built are run as they are (`cargo fuzz run` would build again).
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "corpus/$t" "artifacts/$t"
  log="$logs/$t.log"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb bounds memory.
  if "$target_dir/$triple/release/$t" -artifact_prefix="artifacts/$t/" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "$work/$t" "corpus/$t" >"$log" 2>&1; then
    runs="$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo '?')"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || echo '?')"
    printf 'ok       %-24s %10s runs in %ss, coverage %s\n' "$t" "$runs" "$secs" "$cov"
  else
    printf 'CRASHED  %-24s (log: %s)\n' "$t" "$log"
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -n 20 || true
    failed+=("$t")
  fi
done

if ((${#failed[@]})); then
  echo "FAILED: ${#failed[@]} fuzz target(s) crashed: ${failed[*]} — reproduce with: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET artifacts/TARGET/crash-...)"
  exit 1
fi
echo "every fuzz target ran ${secs}s without a crash"
