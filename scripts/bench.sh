#!/usr/bin/env bash
# The side-by-side benchmark: builds the release `bastion` binary and the harness, then runs
# the harness, which starts `bastion emulate` and `bastion tunnel` as their own processes and
# measures them against direct TCP on 127.0.0.1 (bulk throughput, parallel bulk, setup latency
# with and without an added RTT, CPU per GiB, memory per idle connection, and scp of a 200 MB
# file through `bastion proxy` against a private sshd when OpenSSH's sshd and scp are installed).
# The bulk phase also measures one connection through two plain TCP relay processes in the
# tunnel's and the emulator's places: the same hops without TLS or WebSocket, the ceiling.
#
#   scripts/bench.sh            # full run (about 5 minutes on a 2-core machine)
#   scripts/bench.sh --quick    # smaller sizes and counts (about a minute)
#   scripts/bench.sh --only memory --connections 10000 --hold 60
#                               # hold 10,000 idle connections a minute, check each, close them
#   scripts/bench.sh --help     # every option
#
# Results: a table on stdout, JSON in target/bench/results.json (or --out PATH), child logs in
# target/bench/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

# Up to 10,000 idle connections need about 20,000 descriptors in the harness, the tunnel and
# the emulator (inherited from here): raise the soft limit to the hard limit (the harness also
# tries to raise the hard limit, which only root with CAP_SYS_RESOURCE may).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# One cargo invocation for both, so they share one feature resolution and its artifacts.
cargo build --release -p bastion-cli -p bastion-benches --bin bastion --bin bastion-bench

exec target/release/bastion-bench --bastion target/release/bastion "$@"
