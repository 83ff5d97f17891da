#!/usr/bin/env bash
# REGISTER with digest authentication through sipveil's registrar at rising
# rates, with SIPp (deploy/bench/register.xml).
#
#   deploy/bench/register.sh                 # rates 200 500 1000 2000 3000 4000 /s, 10 s each
#   RATES="1000 3000" SECONDS_PER_RATE=20 USERS=5000 deploy/bench/register.sh
#
# One sipveil (release build) serves all steps: access 127.0.211.10:5060 (UDP),
# [registrar] domain example.test with auth = true. USERS subscribers
# alice0..alice<USERS-1> (default: the largest step's count, so no user
# registers twice within a step) are added first through the running node's
# admin socket (one connection, pipelined JSON lines; the CLI would start one
# process per subscriber). SIPp takes the users in turn from an -inf CSV; each
# registration is REGISTER -> 401 -> REGISTER with credentials -> 200.
#
# Each step runs -m rate*SECONDS_PER_RATE registrations at -r rate and prints a
# Markdown table row: failed registrations, the achieved rate (successful / wall
# time of the step), SIPp retransmissions, UDP datagrams dropped on full receive
# buffers (in brackets: at sipveil's socket), and the CPU seconds per 1000 registrations of sipveil and of SIPp.
# SIPp runs with -nd: a registration that times out is a failure and nothing
# more is sent for it. A step passes with < 0.1% failed and >= 95% of the target
# rate; the highest passing rate and the store's size are printed last.
#
# As root it re-runs itself in a private network namespace (unshare --net):
# nothing clashes with ports in use and nothing leaves the machine. Needs sipp
# and python3. Work files stay in the printed directory (under target/, or
# BENCH_DIR).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

if [ -z "${SIPVEIL_BENCH_NETNS:-}" ] && [ "$(id -u)" -eq 0 ] && unshare --net true 2>/dev/null; then
  exec unshare --net -- env SIPVEIL_BENCH_NETNS=1 bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi

read -r -a RATES <<<"${RATES:-200 500 1000 2000 3000 4000}"
SECONDS_PER_RATE=${SECONDS_PER_RATE:-10}
MAX_RATE=$(printf '%s\n' "${RATES[@]}" | sort -n | tail -1)
# Enough users that no user registers twice within one step.
USERS=${USERS:-$((MAX_RATE * SECONDS_PER_RATE))}
BIN=${SIPVEIL_BIN:-$ROOT/target/release/sipveil}
SBC=127.0.211.10
CLIENT=127.0.211.1

command -v sipp >/dev/null || { echo "sipp not found (Debian package sip-tester)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }
if [ ! -x "$BIN" ]; then
  (cd "$ROOT" && cargo build --release)
fi

mkdir -p "$ROOT/target"
WORK=$(mktemp -d "${BENCH_DIR:-$ROOT/target}/regbench.XXXXXX")
echo "work dir: $WORK"
mkdir -p "$WORK/data"
cat >"$WORK/sipveil.toml" <<EOF
[node]
name = "regbench"
data_dir = "$WORK/data"

[[interface]]
name = "access"
udp = "$SBC:5060"

[registrar]
domain = "example.test"
interface = "access"
auth = true

[[route]]
from = "access"
to = "registrar"
egress = "access"

[policy]
dir = "$ROOT/policies"
EOF

RUST_LOG=${RUST_LOG:-warn} "$BIN" run --config "$WORK/sipveil.toml" >"$WORK/sipveil.log" 2>&1 &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 100); do
  [ -S "$WORK/data/admin.sock" ] && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/sipveil.log" >&2; exit 1; }
  sleep 0.1
done
[ -S "$WORK/data/admin.sock" ] || { echo "sipveil did not open its admin socket" >&2; exit 1; }

# Subscribers through the admin socket, 500 requests in flight at a time.
t0=$(date +%s.%N)
python3 - "$WORK/data/admin.sock" "$USERS" <<'PY'
import json, socket, sys
path, users = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX)
s.connect(path)
r = s.makefile("rb")
for start in range(0, users, 500):
    batch = range(start, min(start + 500, users))
    s.sendall(b"".join(
        json.dumps({"cmd": "subscriber_add", "aor": f"alice{i}@example.test",
                    "password": f"pw-{i}"}).encode() + b"\n" for i in batch))
    for i in batch:
        answer = json.loads(r.readline())
        if not answer.get("ok"):
            sys.exit(f"subscriber_add alice{i}: {answer}")
PY
t1=$(date +%s.%N)
awk -v n="$USERS" -v a="$t0" -v b="$t1" 'BEGIN { printf "added %d subscribers in %.1f s\n", n, b - a }'

{
  echo "SEQUENTIAL"
  for ((i = 0; i < USERS; i++)); do
    echo "alice$i;[authentication username=alice$i password=pw-$i]"
  done
} >"$WORK/users.csv"

TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
# CPU seconds (user + system) of this shell's finished children (SIPp's share
# of a step is the difference). `times` must run in this shell, not in a $(...).
# UDP datagrams dropped because a receive buffer was full (sipveil's or SIPp's;
# only ours when in the private namespace).
udp_drops() { awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp; }
# ... of those, the ones dropped at sipveil's socket (/proc/net/udp "drops").
SBC_HEX=$(IFS=. read -r a b c d <<<"$SBC"; printf '%02X%02X%02X%02X:%04X' "$d" "$c" "$b" "$a" 5060)
sbc_drops() { awk -v a="$SBC_HEX" '$2 == a { s += $NF } END { print s + 0 }' /proc/net/udp; }
child_cpu() {
  times >"$WORK/times"
  awk 'NR == 2 { split($1, u, "m"); split($2, s, "m"); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$WORK/times"
}
col() { # col FILE NAME: the last row's value of column NAME of a SIPp stat CSV
  awk -F';' -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i }
    END { print (c ? $c : "") + 0 }' "$1"
}

echo
echo "| target /s | REGISTERs | successful | failed | failed % | achieved /s | retransmissions | UDP drops (at sipveil) | sipveil CPU s per 1000 | SIPp CPU s per 1000 | pass |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |"
best=none
first_fail=none
for rate in "${RATES[@]}"; do
  n=$((rate * SECONDS_PER_RATE))
  stat="$WORK/register_${rate}_stat.csv"
  c0=$(cpu_ticks)
  child_cpu >"$WORK/k0"
  d0=$(udp_drops)
  e0=$(sbc_drops)
  s0=$(date +%s.%N)
  timeout $((SECONDS_PER_RATE * 4 + 60)) sipp "$SBC:5060" -sf "$HERE/register.xml" \
    -inf "$WORK/users.csv" -i "$CLIENT" -p 5061 -t u1 -m "$n" -r "$rate" -rp 1000 \
    -timeout $((SECONDS_PER_RATE * 4 + 30))s -recv_timeout 10000 -nd -nostdin \
    -trace_stat -stf "$stat" -fd 1 -trace_err -error_file "$WORK/register_${rate}_errors.log" \
    >"$WORK/register_${rate}_sipp.log" 2>&1 || true
  s1=$(date +%s.%N)
  c1=$(cpu_ticks)
  child_cpu >"$WORK/k1"
  d1=$(udp_drops)
  e1=$(sbc_drops)
  ok=$(col "$stat" "SuccessfulCall(C)")
  failed=$(col "$stat" "FailedCall(C)")
  retrans=$(col "$stat" "Retransmissions(C)")
  read -r pct achieved cpu sippcpu pass < <(awk -v ok="$ok" -v n="$n" -v rate="$rate" -v k0="$(cat "$WORK/k0")" -v k1="$(cat "$WORK/k1")" \
    -v t0="$s0" -v t1="$s1" -v c="$((c1 - c0))" -v hz="$TICKS" 'BEGIN {
      pct = 100 * (n - ok) / n; ach = ok / (t1 - t0)
      pass = (pct < 0.1 && ach >= 0.95 * rate) ? "yes" : "no"
      sc = k1 - k0
      printf "%.3f %.0f %.3f %.3f %s\n", pct, ach, (ok > 0 ? 1000 * c / hz / ok : 0), (ok > 0 ? 1000 * sc / ok : 0), pass }')
  echo "| $rate | $n | $ok | $failed | $pct | $achieved | $retrans | $((d1 - d0)) ($((e1 - e0))) | $cpu | $sippcpu | $pass |"
  [ "$pass" = yes ] && best=$rate
  [ "$pass" = no ] && [ "$first_fail" = none ] && first_fail=$rate
done
echo
echo "highest rate with < 0.1% failed registrations (and >= 95% of target achieved): $best /s"
echo "lowest rate that did not pass: $first_fail /s"
echo "store (sled) after the run: $(du -sh "$WORK/data" | cut -f1) for $USERS subscribers and their bindings"
