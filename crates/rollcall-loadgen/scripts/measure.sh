#!/usr/bin/env bash
# Every run behind docs/benchmarks-load.md, one result JSON each under docs/results/.
# Usage: crates/rollcall-loadgen/scripts/measure.sh [run-name ...]   (default: all)
# Needs release builds of `rollcall` and `rollcall-loadgen` (CARGO_TARGET_DIR or target/),
# and for `cluster` a Redis at redis://127.0.0.1:6379.
set -euo pipefail
cd "$(dirname "$0")/../../.."
T=${CARGO_TARGET_DIR:-target}/release
RES=docs/results
mkdir -p "$RES"
PORT=4300

# start_server PORT ARGS... : sets SP to the pid
start_server() {
  local port=$1; shift
  "$T/rollcall" --bind "127.0.0.1:$port" --database-url none "$@" >"/tmp/rollcall-$port.log" 2>&1 &
  SP=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server on $port did not start" >&2; return 1
}

load() { "$T/rollcall-loadgen" run --quiet "$@"; }

idle() {
  for n in 1000 5000 15000; do
    start_server $PORT
    load --server 127.0.0.1:$PORT --server-pid $SP -n $n --rooms 10 --heartbeat 30s \
      --duration 5s --label "idle-$n" --note "idle memory, rooms of 10, one track each" \
      --out "$RES/idle-$n.json" >/dev/null
    kill $SP; wait $SP 2>/dev/null || true
  done
}

max() {
  start_server $PORT
  load --server 127.0.0.1:$PORT --server-pid $SP -n 19950 --workers 2 --rooms 10 \
    --heartbeat 30s --duration 5s --label max-one-node \
    --note "as many connections as one server process takes (20,000-fd limit)" \
    --out "$RES/max-one-node.json" >/dev/null
  kill $SP; wait $SP 2>/dev/null || true
}

heartbeat() {
  start_server $PORT
  load --server 127.0.0.1:$PORT --server-pid $SP -n 15000 --rooms 10 --heartbeat 1s \
    --duration 20s --label heartbeat-15k \
    --note "15,000 connections x 1 heartbeat/s, no churn" \
    --out "$RES/heartbeat-15k.json" >/dev/null
  kill $SP; wait $SP 2>/dev/null || true
}

fanout() {
  for churn in 20 50; do
    for win in 0ms 50ms; do
      start_server $PORT --diff-batch-window $win
      load --server 127.0.0.1:$PORT --server-pid $SP -n 1000 --rooms 1000 --heartbeat 30s \
        --churn $churn --duration 20s --label "fanout-1000-churn$churn-batch$win" \
        --note "one 1,000-member room, $churn leave+join+track/s, --diff-batch-window $win" \
        --out "$RES/fanout-1000-churn$churn-batch$win.json" >/dev/null
      kill $SP; wait $SP 2>/dev/null || true
    done
  done
}

cluster() {
  local prefix="lg$(date +%s)" pids=() servers=()
  for k in 0 1 2; do
    start_server $((PORT + k)) --redis-url redis://127.0.0.1:6379 --redis-prefix "$prefix" \
      --node-id "lg-node-$k"
    pids+=("$SP"); servers+=("127.0.0.1:$((PORT + k))")
  done
  local csv_pids csv_servers
  csv_pids=$(IFS=,; echo "${pids[*]}"); csv_servers=$(IFS=,; echo "${servers[*]}")
  load --server "$csv_servers" --server-pid "$csv_pids" --redis-url redis://127.0.0.1:6379 \
    -n "${CLUSTER_N:-50000}" --workers 3 --rooms 10 --heartbeat 30s --churn 30 --duration 20s \
    --label "cluster-3-nodes" \
    --note "3 nodes + Redis, rooms of 10 spread over the nodes (connection i on node i mod 3), 30 churn/s" \
    --out "$RES/cluster-3-nodes.json" >/dev/null
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
}

# Redis cost of idle presences: no churn, so the steady phase holds only heartbeats (which
# write nothing to Redis) and the status flush (HSET+PEXPIRE per key every heartbeat_interval/2,
# 60 s/2 by default); 65 s spans two flushes.
cluster_idle() {
  local prefix="lgi$(date +%s)" pids=() servers=()
  for k in 0 1 2; do
    start_server $((PORT + k)) --redis-url redis://127.0.0.1:6379 --redis-prefix "$prefix" \
      --node-id "lg-node-$k"
    pids+=("$SP"); servers+=("127.0.0.1:$((PORT + k))")
  done
  local csv_pids csv_servers
  csv_pids=$(IFS=,; echo "${pids[*]}"); csv_servers=$(IFS=,; echo "${servers[*]}")
  load --server "$csv_servers" --server-pid "$csv_pids" --redis-url redis://127.0.0.1:6379 \
    -n "${CLUSTER_N:-50000}" --workers 3 --rooms 10 --heartbeat 25s --duration 65s \
    --label "cluster-3-nodes-idle" \
    --note "3 nodes + Redis, no churn, the 25 s realtime-js heartbeat: Redis cost of idle presences" \
    --out "$RES/cluster-3-nodes-idle.json" >/dev/null
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
}

for run in "${@:-idle max heartbeat fanout cluster cluster_idle}"; do
  for r in $run; do echo "== $r"; "$r"; done
done
"$T/rollcall-loadgen" report
