#!/usr/bin/env bash
# Firebreak against etcd, side by side, on this machine and in one run.
#
#   bench/compare-etcd.sh                      # everything: ~20-25 minutes
#   ROUNDS=1 DURATION=3s NETS=loopback LOAD_KEYS=100000 bench/compare-etcd.sh   # a quick look
#   ONLY="put-1 put-64" LOAD_KEYS=0 OUT=/tmp/b.md bench/compare-etcd.sh           # some workloads only
#
# What it does (see docs/benchmarks.md for the figures it last wrote):
# 1. builds firebreak in release (or uses $FIREBREAK_BIN);
# 2. describes the machine and measures the disk's fsync latency
#    (`firebreak bench --fsync-probe`, in the directory the data goes to);
# 3. for each network (loopback; then "wan": three network namespaces whose
#    members talk only through the drill's WAN relay, RTT 4 ms) and each of
#    $ROUNDS rounds: starts a fresh three-member etcd, runs every workload,
#    stops it; starts a fresh three-member Firebreak, runs the same
#    workloads, stops it (A B A B: never both at once, and drift of the
#    machine falls on both alike);
# 4. on loopback, loads 1,000,000 keys of 256 bytes into each (one after
#    the other) and sums the resident memory of its three member processes;
# 5. writes the tables (medians over rounds, Firebreak/etcd ratios) into
#    docs/benchmarks.md between the GENERATED markers.
#
# Both stores: three members, heartbeat HEARTBEAT_MS and election timeout
# ELECTION_MS (default 100 and 300 ms, Firebreak's defaults; etcd gets the
# same; Firebreak lengthens its timeout when it measures slow round trips
# or late heartbeats, and the "elections" column counts any under load),
# fsync before a write counts (etcd's default; Firebreak always). The same
# client (`firebreak bench`, one process per workload) loads both.
#
# Needs: etcd (Debian's etcd-server), python3, and root for the "wan"
# network (ip netns). Everything it starts is stopped on exit, also on
# failure or Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6s}
WARMUP=${WARMUP:-1s}
KEYS=${KEYS:-10000}
VALUE_SIZE=${VALUE_SIZE:-256}
LOAD_KEYS=${LOAD_KEYS:-1000000}
NETS=${NETS:-"loopback wan"}
RTT=${RTT:-4ms}
HEARTBEAT_MS=${HEARTBEAT_MS:-100}
ELECTION_MS=${ELECTION_MS:-300}
WAN_PREFIX=${WAN_PREFIX:-10.213}
OUT=${OUT:-$ROOT/docs/benchmarks.md}
ETCD=${ETCD:-etcd}
NICE=${NICE:-nice -n 10}
ONLY=${ONLY:-}  # workload names to run (default: all)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v "$ETCD" >/dev/null || die "etcd is not installed (apt-get install etcd-server)"
command -v python3 >/dev/null || die "python3 is needed to summarize"

# One comparison at a time on this machine.
exec 9>/tmp/firebreak-compare-etcd.lock
flock -n 9 || { log "another comparison is running; waiting for it"; flock 9; }

WORK=$(mktemp -d /tmp/fb-vs-etcd.XXXXXX)
RESULTS=$WORK/results
LOGS=$WORK/logs
mkdir -p "$RESULTS" "$LOGS"
LOG_TAG=start  # names the member logs of the cluster being started
PIDS=()        # every process this script started and has not stopped
NAMESPACES=()  # every network namespace this script made

cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  for ns in "${NAMESPACES[@]}"; do
    ip link del "${ns}-r" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK/data"
  if [ "$status" -ne 0 ]; then log "failed; logs and results are in $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build --------------------------------------------------------------
if [ -z "${FIREBREAK_BIN:-}" ]; then
  log "building firebreak (release)"
  (cd "$ROOT" && $NICE cargo build --release -p firebreak --quiet)
  FIREBREAK_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/firebreak
fi
[ -x "$FIREBREAK_BIN" ] || die "no firebreak binary at $FIREBREAK_BIN"
# A private copy: a build in the shared target directory during the run
# must not change the binary under measurement.
BIN=$WORK/firebreak
cp "$FIREBREAK_BIN" "$BIN"

# --- the machine ----------------------------------------------------------
mkdir -p "$WORK/data"
log "measuring fsync latency in $WORK/data"
$BIN bench --fsync-probe --fsync-dir "$WORK/data" --fsync-count 500 --json > "$RESULTS/fsync.json"
{
  echo "nproc=$(nproc)"
  echo "memory=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "kernel=$(uname -sr)"
  echo "disk=$(df -h --output=source,fstype "$WORK" | tail -1 | tr -s ' ')"
  echo "etcd=$($ETCD --version | head -1)"
  echo "firebreak=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo '+changes')"
  echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
  echo "rounds=$ROUNDS duration=$DURATION warmup=$WARMUP keys=$KEYS value_size=$VALUE_SIZE rtt=$RTT heartbeat_ms=$HEARTBEAT_MS election_ms=$ELECTION_MS"
} > "$RESULTS/machine.txt"

# --- clusters -------------------------------------------------------------
# Member i (1..3): on loopback client 127.0.0.1:1<i>379 and peer 1<i>380;
# on "wan" its namespace's address $WAN_PREFIX.<i>.10, ports 2379/2380, and
# the peers reach it through the relay at the gateway $WAN_PREFIX.<i>.1.
NET=loopback
member_listen() { # i kind -> host:port the member binds
  if [ "$NET" = loopback ]; then
    [ "$2" = client ] && echo "127.0.0.1:1${1}379" || echo "127.0.0.1:1${1}380"
  else
    [ "$2" = client ] && echo "$WAN_PREFIX.$1.10:2379" || echo "$WAN_PREFIX.$1.10:2380"
  fi
}
member_peer_url() { # i -> the URL the other members use
  if [ "$NET" = loopback ]; then echo "http://$(member_listen "$1" peer)"; else echo "http://$WAN_PREFIX.$1.1:2380"; fi
}
endpoints() { echo "$(member_listen 1 client),$(member_listen 2 client),$(member_listen 3 client)"; }
# The client URL of the member that says it leads.
leader_endpoint() {
  ETCDCTL_API=3 etcdctl --endpoints "$(endpoints)" endpoint status -w json |
    python3 -c 'import json,sys
for s in json.load(sys.stdin):
    st = s["Status"]
    if st["header"]["member_id"] == st["leader"]:
        print(s["Endpoint"]); break'
}
in_ns() { # i cmd... : becomes cmd, in member i's namespace on "wan" (so $! is its pid)
  local i=$1; shift
  if [ "$NET" = loopback ]; then exec "$@"; else exec ip netns exec "fbb$i" "$@"; fi
}
ports_free() { # refuses to start a cluster on ports something else listens on
  local i kind addr
  for i in 1 2 3; do
    for kind in client peer; do
      addr=$(member_listen $i $kind)
      if in_ns_check $i ss -Hltn "sport = :${addr##*:}" | grep -q .; then
        die "$addr is already in use: $(ss -Hltnp "sport = :${addr##*:}" | head -1)"
      fi
    done
  done
}
in_ns_check() { local i=$1; shift; if [ "$NET" = loopback ]; then "$@"; else ip netns exec "fbb$i" "$@"; fi; }

MEMBER_PIDS=()
start_etcd() {
  local dir=$1 cluster="" i
  for i in 1 2 3; do cluster+="${cluster:+,}e$i=$(member_peer_url $i)"; done
  MEMBER_PIDS=()
  for i in 1 2 3; do
    mkdir -p "$dir/e$i"
    in_ns $i "$ETCD" --name "e$i" --data-dir "$dir/e$i" \
      --listen-client-urls "http://$(member_listen $i client)" \
      --advertise-client-urls "http://$(member_listen $i client)" \
      --listen-peer-urls "http://$(member_listen $i peer)" \
      --initial-advertise-peer-urls "$(member_peer_url $i)" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token fb-bench \
      --heartbeat-interval "$HEARTBEAT_MS" --election-timeout "$ELECTION_MS" \
      --logger zap --log-level warn > "$LOGS/$LOG_TAG-e$i.log" 2>&1 &
    PIDS+=($!); MEMBER_PIDS+=($!)
  done
}

start_firebreak() {
  local dir=$1 i j
  MEMBER_PIDS=()
  for i in 1 2 3; do
    mkdir -p "$dir/m$i"
    {
      echo "name = \"m$i\""
      echo "datacenter = \"dc$i\""
      echo "data_dir = \"$dir/m$i\""
      echo "listen_client = \"$(member_listen $i client)\""
      echo "listen_peer = \"$(member_listen $i peer)\""
      echo
      echo "[raft]"
      echo "heartbeat_interval_ms = $HEARTBEAT_MS"
      echo "election_timeout_ms = $ELECTION_MS"
      for j in 1 2 3; do
        echo
        echo "[[initial_cluster]]"
        echo "name = \"m$j\""
        echo "datacenter = \"dc$j\""
        echo "peer_url = \"$(member_peer_url $j)\""
        echo "client_url = \"http://$(member_listen $j client)\""
      done
    } > "$dir/m$i.toml"
    in_ns $i env FIREBREAK_LOG=warn "$BIN" serve --config "$dir/m$i.toml" > "$LOGS/$LOG_TAG-m$i.log" 2>&1 &
    PIDS+=($!); MEMBER_PIDS+=($!)
  done
}

stop_members() {
  local pid keep=()
  for pid in "${MEMBER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${MEMBER_PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    case " ${MEMBER_PIDS[*]} " in *" $pid "*) ;; *) keep+=("$pid") ;; esac
  done
  PIDS=("${keep[@]}")
  MEMBER_PIDS=()
}

wait_writable() {
  for _ in $(seq 120); do
    if $BIN bench --endpoints "$(endpoints)" --target leader --op put --total 1 --key-prefix ready/ \
        --timeout 2s --json > /dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  die "the cluster did not become writable; logs in $LOGS"
}

cpu_ticks() { # sum of utime+stime of the given pids
  local t=0 pid
  for pid in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
  echo $t
}
rss_kib() { # sum of a /proc/PID/status field (VmRSS, VmHWM) over the members
  local field=$1 t=0 pid; shift
  for pid in "$@"; do t=$((t + $(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status"))); done
  echo $t
}

# --- workloads ----------------------------------------------------------
# name | firebreak bench arguments
WORKLOADS=(
  "put-1|--op put --clients 1 --conns 1 --target leader"
  "put-16|--op put --clients 16 --conns 4 --target leader"
  "put-64|--op put --clients 64 --conns 8 --target leader"
  "get-64|--op get --clients 64 --conns 8 --target all"
  "get-serializable-64|--op get-serializable --clients 64 --conns 8 --target all"
  "txn-16|--op txn --clients 16 --conns 4 --target leader"
  "put-64-open|--op put --clients 64 --conns 8 --target leader --rate @RATE@"
  # Enough clients that the servers, not the round trip, bound the rate.
  "put-512|--op put --clients 512 --conns 32 --target leader"
)
COMMON="--keys $KEYS --value-size $VALUE_SIZE --duration $DURATION --warmup $WARMUP --json"
RATE=""

run_workload() { # system round name args
  local system=$1 round=$2 name=$3 args=$4 out
  out="$RESULTS/$NET/$system/r$round/$name.json"
  mkdir -p "$(dirname "$out")"
  if [[ "$args" == *@RATE@* ]]; then
    [ -n "$RATE" ] || die "no rate for the open-loop workload"
    args=${args//@RATE@/$RATE}
  fi
  local cmd="$BIN bench --endpoints $(endpoints) $args $COMMON"
  echo "$NET $system r$round $name: $cmd" >> "$RESULTS/commands.txt"
  local before relay_before after relay_after
  before=$(cpu_ticks "${MEMBER_PIDS[@]}")
  relay_before=$(cpu_ticks ${RELAY_PID:-})
  # shellcheck disable=SC2086
  $NICE $cmd > "$out.tmp" || log "$system $name exited with $? (errors are in the report; member logs in $LOGS)"
  local pid
  for pid in "${MEMBER_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || die "a $system member (pid $pid) died during $name; logs in $LOGS"
  done
  after=$(cpu_ticks "${MEMBER_PIDS[@]}")
  relay_after=$(cpu_ticks ${RELAY_PID:-})
  python3 - "$out.tmp" "$out" "$((after - before))" "$((relay_after - relay_before))" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
src, dst, ticks, relay_ticks, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = json.load(open(src))
r["server_cpu_seconds"] = ticks / hz
r["relay_cpu_seconds"] = relay_ticks / hz
json.dump(r, open(dst, "w"))
EOF
  rm -f "$out.tmp"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  %-22s %9.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  errors %d" % (sys.argv[2], r["ops_per_sec"], r["latency_us"]["p50"]/1e3, r["latency_us"]["p99"]/1e3, r["errors"]))' "$out" "$system $name" >&2
  if [ "$name" = put-64 ] && [ "$system" = etcd ] && [ -z "$RATE" ]; then
    # The open-loop rate: half of what etcd did closed-loop in the first
    # round, a load both stores are meant to carry.
    RATE=$(python3 -c 'import json,sys; print(max(10, int(json.load(open(sys.argv[1]))["ops_per_sec"] / 2)))' "$out")
    echo "$NET $RATE" >> "$RESULTS/rates.txt"
    log "open-loop rate on $NET: $RATE puts/s"
  fi
}

prefill() {
  $BIN bench --endpoints "$(endpoints)" --target leader --op put --batch 100 --keys "$KEYS" \
    --total $(( (KEYS + 99) / 100 )) --key-order sequential --clients 4 --value-size "$VALUE_SIZE" \
    --json > /dev/null
}

start_system() { # system dir
  ports_free
  case $1 in
    etcd) start_etcd "$2" ;;
    firebreak) start_firebreak "$2" ;;
  esac
  wait_writable
}

run_round() { # round
  local system name args
  for system in etcd firebreak; do
    log "$NET round $1/$ROUNDS: $system"
    rm -rf "$WORK/data/$system"
    LOG_TAG=$NET-r$1-$system
    start_system "$system" "$WORK/data/$system"
    prefill
    for w in "${WORKLOADS[@]}"; do
      name=${w%%|*}; args=${w#*|}
      if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
      run_workload "$system" "$1" "$name" "$args"
    done
    stop_members
    rm -rf "$WORK/data/$system"
  done
}

memory() {
  local system dir start end
  for system in etcd firebreak; do
    log "memory: loading $LOAD_KEYS keys of $VALUE_SIZE bytes into $system"
    dir=$WORK/data/$system
    rm -rf "$dir"
    LOG_TAG=memory-$system
    start_system "$system" "$dir"
    local idle; idle=$(rss_kib VmRSS "${MEMBER_PIDS[@]}")
    start=$(date +%s.%N)
    $NICE $BIN bench --endpoints "$(endpoints)" --target leader --op put --batch 100 --keys "$LOAD_KEYS" \
      --total $(( (LOAD_KEYS + 99) / 100 )) --key-order sequential --clients 8 --conns 4 \
      --value-size "$VALUE_SIZE" --timeout 60s --json > "$RESULTS/load-$system.json"
    end=$(date +%s.%N)
    sleep 5
    local rss hwm; rss=$(rss_kib VmRSS "${MEMBER_PIDS[@]}"); hwm=$(rss_kib VmHWM "${MEMBER_PIDS[@]}")
    # Then writes on the loaded store for a while (a snapshot of a large
    # store happens here), and memory again.
    $NICE $BIN bench --endpoints "$(endpoints)" --target leader --op put --clients 64 --conns 8 \
      --keys "$LOAD_KEYS" --value-size "$VALUE_SIZE" --duration 12s --warmup 1s --json \
      > "$RESULTS/loaded-put-64-$system.json" || true
    sleep 2
    local rss2 hwm2; rss2=$(rss_kib VmRSS "${MEMBER_PIDS[@]}"); hwm2=$(rss_kib VmHWM "${MEMBER_PIDS[@]}")
    # The same writes while the leader writes a snapshot of the whole store
    # (`etcdctl snapshot save`, etcd's format from both): a snapshot must
    # not stop writes.
    $NICE $BIN bench --endpoints "$(endpoints)" --target leader --op put --clients 64 --conns 8 \
      --keys "$LOAD_KEYS" --value-size "$VALUE_SIZE" --duration 12s --warmup 1s --json \
      > "$RESULTS/loaded-snapshot-put-64-$system.json" &
    local load_pid=$! leader snap_start snap_end
    sleep 4
    leader=$(leader_endpoint)
    snap_start=$(date +%s.%N)
    ETCDCTL_API=3 etcdctl --endpoints "$leader" --command-timeout=120s snapshot save "$WORK/snapshot-$system.db" \
      > "$LOGS/snapshot-$system.log" 2>&1 || log "  $system: snapshot save failed: $(tail -1 "$LOGS/snapshot-$system.log")"
    snap_end=$(date +%s.%N)
    wait "$load_pid" || true
    echo "{\"system\":\"$system\",\"snapshot_seconds\":$(awk -v a="$snap_start" -v b="$snap_end" 'BEGIN {printf "%.2f", b - a}'),\"snapshot_bytes\":$(stat -c %s "$WORK/snapshot-$system.db" 2>/dev/null || echo 0)}" \
      > "$RESULTS/snapshot-$system.json"
    rm -f "$WORK/snapshot-$system.db"
    local disk; disk=$(du -sk "$dir" | cut -f1)
    local anon file; anon=$(rss_kib RssAnon "${MEMBER_PIDS[@]}"); file=$(rss_kib RssFile "${MEMBER_PIDS[@]}")
    echo "{\"system\":\"$system\",\"keys\":$LOAD_KEYS,\"idle_rss_kib\":$idle,\"rss_kib\":$rss,\"hwm_kib\":$hwm,\"rss_anon_after_writes_kib\":$anon,\"rss_file_after_writes_kib\":$file,\"rss_after_writes_kib\":$rss2,\"hwm_after_writes_kib\":$hwm2,\"disk_kib\":$disk,\"load_seconds\":$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}')}" \
      > "$RESULTS/memory-$system.json"
    log "  $system: RSS $((rss / 1024)) MiB after the load, $((rss2 / 1024)) MiB after 12 s of writes (peak $((hwm2 / 1024)) MiB)"
    stop_members
    rm -rf "$dir"
  done
}

# --- the "wan" network ------------------------------------------------------
RELAY_PID=""
wan_up() {
  [ "$(id -u)" = 0 ] || die "the wan network needs root (ip netns)"
  [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 0 ] ||
    log "warning: ip_forward is on, so members could bypass the relay through the root namespace"
  local i
  for i in 1 2 3; do
    ip netns del "fbb$i" 2>/dev/null || true
    ip link del "fbb$i-r" 2>/dev/null || true
    ip netns add "fbb$i"; NAMESPACES+=("fbb$i")
    ip link add "fbb$i-r" type veth peer name "fbb$i-n"
    ip link set "fbb$i-n" netns "fbb$i"
    ip addr add "$WAN_PREFIX.$i.1/24" dev "fbb$i-r"
    ip link set "fbb$i-r" up
    ip netns exec "fbb$i" ip link set lo up
    ip netns exec "fbb$i" ip addr add "$WAN_PREFIX.$i.10/24" dev "fbb$i-n"
    ip netns exec "fbb$i" ip link set "fbb$i-n" up
    ip netns exec "fbb$i" ip route add default via "$WAN_PREFIX.$i.1"
  done
  $BIN bench --wan-relay --wan-prefix "$WAN_PREFIX" --wan-rtt "$RTT" > "$RESULTS/relay.json" 2> "$WORK/relay.log" &
  RELAY_PID=$!; PIDS+=("$RELAY_PID")
  for _ in $(seq 50); do grep -q "relay ready" "$WORK/relay.log" && return 0; sleep 0.1; done
  die "the relay did not start: $(cat "$WORK/relay.log")"
}
wan_down() {
  local i keep=() pid
  kill -TERM "$RELAY_PID" 2>/dev/null || true
  wait "$RELAY_PID" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do [ "$pid" = "$RELAY_PID" ] || keep+=("$pid"); done
  PIDS=("${keep[@]}")
  RELAY_PID=""
  for i in 1 2 3; do ip link del "fbb$i-r" 2>/dev/null || true; ip netns del "fbb$i" 2>/dev/null || true; done
  NAMESPACES=()
}

# --- run ----------------------------------------------------------------
for NET in $NETS; do
  RATE=""
  log "network: $NET"
  if [ "$NET" = wan ]; then wan_up; fi
  for round in $(seq "$ROUNDS"); do run_round "$round"; done
  if [ "$NET" = loopback ] && [ "$LOAD_KEYS" -gt 0 ]; then memory; fi
  if [ "$NET" = wan ]; then wan_down; fi
done
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESULTS/machine.txt"

# --- summary ------------------------------------------------------------
log "writing $OUT"
INVOCATION="ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP KEYS=$KEYS VALUE_SIZE=$VALUE_SIZE LOAD_KEYS=$LOAD_KEYS NETS=\"$NETS\" RTT=$RTT HEARTBEAT_MS=$HEARTBEAT_MS ELECTION_MS=$ELECTION_MS${ONLY:+ ONLY=\"$ONLY\"} bench/compare-etcd.sh"
python3 "$ROOT/bench/summarize.py" "$RESULTS" "$OUT" "$INVOCATION" "$NETS" "$BIN"
mkdir -p "$ROOT/target" && rm -rf "$ROOT/target/compare-etcd-results" && cp -r "$RESULTS" "$ROOT/target/compare-etcd-results"
log "done; raw results in $RESULTS and target/compare-etcd-results"
