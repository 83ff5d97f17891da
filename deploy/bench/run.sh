#!/usr/bin/env bash
# Load test: SIPp caller -> edge (sipveil, or Kamailio+topos+Redis) -> SIPp callee
# at rising call rates, loopback only, each rate bounded in calls and time.
#
#   deploy/bench/run.sh [sipveil|kamailio|both|direct|all]   (default: sipveil)
#
# both = sipveil then Kamailio in one run; direct = SIPp caller straight to the
# SIPp callee (the tools' own ceiling on this machine right now); all = the three.
#
# Per rate it prints failed calls, the achieved rate, INVITE->200 response
# times (SIPp -trace_rtt: whole ms, 0 = under 1 ms), CPU seconds of the edge per
# 1000 calls (utime+stime from /proc/PID/stat, before/after) and its peak RSS
# (VmHWM), then the highest rate with < 0.1 % failed calls and >= 95 % of the
# target rate achieved.
#
# It re-runs itself inside a private network namespace (unshare --net) that
# has only its own loopback; if that is not permitted it warns and uses the
# machine's loopback (addresses 127.0.99.x, Redis on 127.0.0.1:$REDIS_PORT).
#
# Environment:
#   RATES="500 1000 2000 3000 5000 7000"   calls/s to try, in order
#   SECS=10             seconds of calls per rate (-m = rate * SECS)
#   HOLD_MS=500         call hold time (SIPp -d)
#   STOP_AFTER_FAIL=1   stop escalating after the first failing rate (0: run all)
#   SIPVEIL_BIN=...     default target/release/sipveil (built if missing)
#   OUT=DIR             where traces and results.md go (default: mktemp)
#   REDIS_PORT=6379
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SCEN="$ROOT/fixtures/sipp"

TARGET=${1:-sipveil}
case "$TARGET" in
sipveil | kamailio | both | direct | all) ;;
*)
  echo "usage: $0 [sipveil|kamailio|both|direct|all]" >&2
  exit 2
  ;;
esac

RATES=${RATES:-"500 1000 2000 3000 5000 7000"}
SECS=${SECS:-10}
HOLD_MS=${HOLD_MS:-500}
STOP_AFTER_FAIL=${STOP_AFTER_FAIL:-1}
REDIS_PORT=${REDIS_PORT:-6379}

CALLER_IP=127.0.99.1
CALLEE_IP=127.0.99.2
CALLEE_PORT=5090
ACCESS_IP=127.0.99.10
CORE_IP=127.0.99.20
EDGE_PORT=5060

need() { command -v "$1" >/dev/null 2>&1 || {
  echo "$0: $1 not found on PATH" >&2
  exit 1
}; }
need sipp
need awk

# --- build (outside the namespace: it may need the network) -----------------
if [ -z "${BENCH_IN_NETNS:-}" ]; then
  if [ "$TARGET" != kamailio ] && [ "$TARGET" != direct ] && [ -z "${SIPVEIL_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
  fi
  if [ "$TARGET" = kamailio ] || [ "$TARGET" = both ] || [ "$TARGET" = all ]; then
    need kamailio
    need redis-server
  fi
  # --- private network namespace ---------------------------------------------
  if [ -z "${BENCH_NO_NETNS:-}" ] && unshare --net true 2>/dev/null; then
    exec unshare --net -- env BENCH_IN_NETNS=1 bash "$0" "$@"
  fi
  echo "WARNING: cannot create a network namespace (unshare --net); using the machine's loopback" >&2
  BENCH_IN_NETNS=none
fi
if [ "$BENCH_IN_NETNS" = 1 ]; then
  ip link set lo up 2>/dev/null || ifconfig lo up
fi

SIPVEIL_BIN=${SIPVEIL_BIN:-$ROOT/target/release/sipveil}
OUT=${OUT:-$(mktemp -d /tmp/sipveil-bench.XXXXXX)}
mkdir -p "$OUT"
CLK_TCK=$(getconf CLK_TCK)

# Every background process we start is remembered until it has been reaped,
# and stopped by its PID on exit.
STARTED=()
started() { STARTED+=("$1"); }
reaped() {
  local keep=() p
  for p in "${STARTED[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
  STARTED=("${keep[@]}")
}
stop_pid() { # SIGKILL by PID, reap, forget
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  reaped "$1"
}
cleanup() {
  local p
  for p in "${STARTED[@]}"; do
    kill -9 "$p" 2>/dev/null || true
  done
  for p in "${STARTED[@]}"; do
    wait "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT

# --- /proc helpers -------------------------------------------------------------
# CPU ticks (utime+stime) summed over PIDs; fields counted after "comm)".
cpu_ticks() {
  local sum=0 p t
  for p in "$@"; do
    t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}
# Largest VmHWM (kB) among PIDs (shared memory would be counted once per
# process if summed).
peak_rss_kb() {
  local max=0 p v
  for p in "$@"; do
    v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null) || v=0
    [ "${v:-0}" -gt "$max" ] && max=$v
  done
  echo "$max"
}
# PID and all its descendants.
proc_tree() {
  local root=$1 p kids
  echo "$root"
  kids=$(ps -o pid= --ppid "$root" 2>/dev/null || true)
  for p in $kids; do proc_tree "$p"; done
}
# UDP datagrams the kernel dropped for want of receive buffer space (per
# network namespace: inside our own, every drop is one of ours).
udp_rcvbuf_errors() {
  awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }' /proc/net/snmp
}
wait_udp_bound() { # ip port
  local hex i
  hex=$(printf '%02X%02X%02X%02X:%04X' $(echo "$1" | awk -F. '{print $4, $3, $2, $1}') "$2")
  for i in $(seq 1 100); do
    grep -q " $hex " /proc/net/udp && return 0
    sleep 0.05
  done
  return 1
}
# One OPTIONS over UDP; succeeds on any SIP response (sipp is the only tool
# needed: a tiny scenario).
OPTIONS_XML="$OUT/options.xml"
cat >"$OPTIONS_XML" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="options">
  <send retrans="200">
    <![CDATA[
      OPTIONS sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:bench@example.test>;tag=[pid]b[call_number]
      To: <sip:[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" optional="true" next="done"/>
  <recv response="404" optional="true" next="done"/>
  <recv response="483" optional="true" next="done"/>
  <recv response="405"/>
  <label id="done"/>
</scenario>
EOF
wait_sip_up() { # ip port pid
  local i
  for i in $(seq 1 20); do
    kill -0 "$3" 2>/dev/null || return 1
    if timeout 5 sipp "$1:$2" -sf "$OPTIONS_XML" -i "$CALLER_IP" -p 5099 -m 1 -nostdin \
      -timeout 2s -timeout_error -max_retrans 3 >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.25
  done
  return 1
}

# --- edges ---------------------------------------------------------------------
EDGE_PIDS=()
REDIS_PID=""

start_sipveil() {
  [ -x "$SIPVEIL_BIN" ] || {
    echo "no sipveil binary at $SIPVEIL_BIN" >&2
    return 1
  }
  local cfg="$OUT/sipveil-bench.toml"
  cat >"$cfg" <<EOF
[node]
name = "bench"
data_dir = "$OUT/sipveil-data"

[[interface]]
name = "access"
udp = "$ACCESS_IP:$EDGE_PORT"

[[interface]]
name = "core"
udp = "$CORE_IP:$EDGE_PORT"
trusted = true

[[route]]
from = "access"
to = "sip:$CALLEE_IP:$CALLEE_PORT"
egress = "core"

# The load generator is one address far above the per-source budgets and
# flood threshold meant for a public interface: declare it a known peer.
[admission]
exempt = ["$CALLER_IP"]

# A signaling benchmark: media is not relayed (at thousands of calls/s the relay's
# port pool, with its 5 s reuse quarantine, would be the limit, not the SBC core).
# MEDIA_MODE=relay measures with the relay on.
[media]
mode = "${MEDIA_MODE:-passthrough}"
EOF
  RUST_LOG=${RUST_LOG:-warn} "$SIPVEIL_BIN" run --config "$cfg" >"$OUT/sipveil.log" 2>&1 &
  local pid=$!
  started "$pid"
  if ! wait_sip_up "$ACCESS_IP" "$EDGE_PORT" "$pid"; then
    echo "sipveil did not answer OPTIONS; log tail:" >&2
    tail -20 "$OUT/sipveil.log" >&2
    stop_pid "$pid"
    return 1
  fi
  EDGE_PIDS=("$pid")
}

start_kamailio() {
  mkdir -p "$OUT/kamailio-run" "$OUT/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$OUT/redis" >"$OUT/redis.log" 2>&1 &
  REDIS_PID=$!
  started "$REDIS_PID"
  local i
  for i in $(seq 1 50); do
    grep -q "Ready to accept" "$OUT/redis.log" 2>/dev/null && break
    sleep 0.1
  done
  kamailio -DD -E -f "$HERE/kamailio-topos.cfg" -Y "$OUT/kamailio-run" -m 256 -M 32 -x tlsf -X tlsf \
    -A "REDIS=\"name=tps;addr=127.0.0.1;port=$REDIS_PORT\"" \
    >"$OUT/kamailio.log" 2>&1 &
  local pid=$!
  started "$pid"
  # (Kamailio would relay an OPTIONS probe to the absent callee: wait for the socket)
  sleep 1
  if ! kill -0 "$pid" 2>/dev/null || ! wait_udp_bound "$ACCESS_IP" "$EDGE_PORT"; then
    echo "kamailio did not come up; log tail:" >&2
    tail -20 "$OUT/kamailio.log" >&2
    EDGE_PIDS=("$pid")
    mapfile -t EDGE_PIDS < <(proc_tree "$pid")
    stop_edge
    return 1
  fi
  mapfile -t EDGE_PIDS < <(proc_tree "$pid")
}

stop_edge() {
  # the first EDGE_PID is the one we started; the others are its children
  [ "${#EDGE_PIDS[@]}" -gt 0 ] || return 0
  local p
  for p in "${EDGE_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  stop_pid "${EDGE_PIDS[0]}"
  [ -n "$REDIS_PID" ] && stop_pid "$REDIS_PID"
  EDGE_PIDS=()
  REDIS_PID=""
}

# --- one rate ----------------------------------------------------------------------
# Prints one table row and returns 0 if the rate passed.
RESULTS="$OUT/results.md"
run_rate() { # target rate
  local target=$1 rate=$2
  local calls=$((rate * SECS))
  local d="$OUT/$target-$rate"
  mkdir -p "$d"
  cp "$SCEN/uac_basic.xml" "$SCEN/uas_basic.xml" "$d/"

  # (SIPp writes its -trace_rtt file into its working directory: run in $d)
  (cd "$d" && exec sipp -sf uas_basic.xml -i "$CALLEE_IP" -p "$CALLEE_PORT" \
    -m "$calls" -nostdin -timeout $((SECS + 80))s -buff_size 4194304 \
    -trace_stat -stf callee_stat.csv -fd 1 >callee.out 2>&1) &
  local uas=$!
  started "$uas"
  wait_udp_bound "$CALLEE_IP" "$CALLEE_PORT" || echo "callee did not bind" >&2

  local cpu0 redis0 t0 t1 cpu1 redis1
  cpu0=$(cpu_ticks "${EDGE_PIDS[@]}")
  redis0=$([ -n "$REDIS_PID" ] && cpu_ticks "$REDIS_PID" || echo 0)
  local drops0 drops1
  drops0=$(udp_rcvbuf_errors)
  t0=$(date +%s.%N)
  local first_hop="$ACCESS_IP:$EDGE_PORT"
  [ "$target" = direct ] && first_hop="$CALLEE_IP:$CALLEE_PORT"
  (cd "$d" && exec timeout $((SECS + 90)) sipp "$first_hop" -sf uac_basic.xml \
    -i "$CALLER_IP" -p 5061 -s bob -r "$rate" -rp 1000 -m "$calls" -l $((rate * 5)) \
    -d "$HOLD_MS" -nostdin -timeout $((SECS + 60))s -recv_timeout 10000 -buff_size 4194304 \
    -trace_rtt -rtt_freq 100 -trace_stat -stf caller_stat.csv -fd 1 \
    -trace_err -error_file caller_errors.log -max_log_size 2000000 \
    >caller.out 2>&1) || true
  t1=$(date +%s.%N)
  # the callee ends with its last call; bound it anyway
  local i
  for i in $(seq 1 100); do kill -0 "$uas" 2>/dev/null || break; sleep 0.1; done
  stop_pid "$uas"
  cpu1=$(cpu_ticks "${EDGE_PIDS[@]}")
  redis1=$([ -n "$REDIS_PID" ] && cpu_ticks "$REDIS_PID" || echo 0)
  local rss
  rss=$(peak_rss_kb "${EDGE_PIDS[@]}")
  drops1=$(udp_rcvbuf_errors)

  local ok rtt
  ok=$(awk -F';' 'NR==1 {for (i=1;i<=NF;i++) if ($i=="SuccessfulCall(C)") c=i; next}
                  {v=$c} END {print v+0}' "$d/caller_stat.csv" 2>/dev/null || echo 0)
  rtt=$(ls "$d"/uac_basic_*_rtt.csv 2>/dev/null | head -1 || true)
  # achieved rate: answered INVITEs per second between the first and last answer;
  # percentiles of INVITE->200 in ms
  local stats
  stats=$(
    if [ -n "$rtt" ]; then
      awk -F';' 'NR>1 && $3=="invite" {print $1, $2}' "$rtt"
    fi | sort -k2,2n | awk '
      { n++; t=$1+0; rt[n]=$2+0; if (n==1 || t<tmin) tmin=t; if (t>tmax) tmax=t }
      END {
        if (n < 2) { print "0 - - - -"; exit }
        span = (tmax - tmin) / 1000.0
        rate = (span > 0) ? (n - 1) / span : 0
        p50 = rt[int((n - 1) * 0.50) + 1]; p90 = rt[int((n - 1) * 0.90) + 1]
        p99 = rt[int((n - 1) * 0.99) + 1]; mx = rt[n]
        printf "%.0f %d %d %d %d\n", rate, p50, p90, p99, mx
      }'
  )
  local achieved p50 p90 p99 mx
  read -r achieved p50 p90 p99 mx <<<"$stats"
  local failed=$((calls - ok))
  local cpu_s redis_s per1k redis_per1k
  cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / h}')
  redis_s=$(awk -v a="$redis0" -v b="$redis1" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / h}')
  per1k=$(awk -v c="$cpu_s" -v n="$ok" 'BEGIN {if (n > 0) printf "%.3f", c / (n / 1000); else print "-"}')
  redis_per1k=$(awk -v c="$redis_s" -v n="$ok" 'BEGIN {if (n > 0) printf "%.3f", c / (n / 1000); else print "-"}')
  [ -z "$REDIS_PID" ] && redis_per1k="-"
  [ "$target" = direct ] && per1k="-"
  local wall pass=no
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
  if [ $((failed * 1000)) -lt "$calls" ] && [ "$((achieved * 100))" -ge "$((rate * 95))" ]; then
    pass=yes
  fi
  local pct load
  pct=$(awk -v f="$failed" -v c="$calls" 'BEGIN {printf "%.3f", 100 * f / c}')
  load=$(cut -d' ' -f1 /proc/loadavg)
  # share of time some task waited for a CPU (PSI), last 10 s: others' load shows here
  local psi
  psi=$(awk '/^some/ {sub("avg10=", "", $2); print $2}' /proc/pressure/cpu 2>/dev/null || true)
  printf '| %-8s | %5d | %6d | %6d | %7s | %6s | %4s | %4s | %4s | %5s | %8s | %10s | %6d | %6s | %5s | %5s | %6s | %4s |\n' \
    "$target" "$rate" "$calls" "$failed" "$pct" "$achieved" "$p50" "$p90" "$p99" "$mx" \
    "$per1k" "$redis_per1k" $((rss / 1024)) "$wall" "$load" "${psi:--}" $((drops1 - drops0)) "$pass" | tee -a "$RESULTS"
  [ "$pass" = yes ]
}

header() {
  {
    echo
    echo "| edge     |  rate |  calls | failed | failed% | achvd  |  p50 |  p90 |  p99 |   max | CPU s/1k | Redis s/1k | RSS MB | wall s |  load | psi % | UDP drops | pass |"
    echo "|----------|------:|-------:|-------:|--------:|-------:|-----:|-----:|-----:|------:|---------:|-----------:|-------:|-------:|------:|------:|----------:|-----:|"
  } | tee -a "$RESULTS"
}

bench() { # target
  local target=$1 best=0 rate
  local up=0
  case "$target" in
  sipveil) start_sipveil || up=$? ;;
  kamailio) start_kamailio || up=$? ;;
  direct) EDGE_PIDS=() ;;
  esac
  if [ "$up" != 0 ]; then
    echo "$target: did not start; skipped" | tee -a "$RESULTS"
    return 0
  fi
  header
  for rate in $RATES; do
    if run_rate "$target" "$rate"; then
      best=$rate
    elif [ "$STOP_AFTER_FAIL" = 1 ]; then
      break
    fi
    sleep 2
  done
  stop_edge
  echo "$target: highest rate with < 0.1% failed calls and >= 95% of target achieved: $best calls/s" |
    tee -a "$RESULTS"
}

{
  echo "# sipveil bench $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores"
  echo
  echo "rates: $RATES; $SECS s of calls per rate; hold ${HOLD_MS} ms; namespace: ${BENCH_IN_NETNS}"
  echo "response times: SIPp INVITE->200 in ms (whole ms); CPU: edge utime+stime per 1000 answered calls;"
  echo "RSS: peak (VmHWM) of the largest edge process so far; load: 1-min load average after the rate;"
  echo "psi: % of the last 10 s in which some task waited for a CPU (/proc/pressure/cpu), i.e. contention;"
  echo "UDP drops: datagrams the kernel dropped for a full receive buffer (RcvbufErrors; all ours inside the namespace)"
  echo "(rate = target calls/s, achvd = answered INVITEs/s, p50..max = INVITE->200 ms)"
  echo "before the run: load $(cut -d' ' -f1-3 /proc/loadavg); cpu pressure: $(head -1 /proc/pressure/cpu 2>/dev/null)"
} | tee "$RESULTS"

case "$TARGET" in
both)
  bench sipveil
  bench kamailio
  ;;
all)
  bench direct
  bench sipveil
  bench kamailio
  ;;
*) bench "$TARGET" ;;
esac
echo
echo "traces and results: $OUT (results.md)"
