#!/usr/bin/env bash
# Media relay benchmark: builds examples/rtp_load in release mode and runs the
# matrix reported in deploy/bench/MEDIA-RESULTS.md. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --example rtp_load >/dev/null
B=target/release/examples/rtp_load
echo "# $(date -u +%FT%TZ) $(nproc) cpus, load: $(cut -d' ' -f1-3 /proc/loadavg)"
run() { echo "\$ rtp_load $*"; "$B" "$@"; echo; }
run --streams 100 --pps 5000 --secs 10 --direct
run --streams 100 --pps 5000 --secs 10
run --streams 500 --pps 25000 --secs 10 --direct
run --streams 500 --pps 25000 --secs 10
run --streams 1000 --pps 50000 --secs 10
run --streams 500 --pps 0 --secs 5
run --streams 500 --pps 0 --secs 5 --workers 2
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
