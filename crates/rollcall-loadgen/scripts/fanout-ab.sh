#!/usr/bin/env bash
# fanout-ab.sh ROUNDS name:bin ... (from the repo root; LG= another rollcall-loadgen): one 1,000-member room at 50 churn/s, alternating binaries.
set -u
rounds=$1; shift
LG=$(realpath "${LG:-target/release/rollcall-loadgen}")
for r in $(seq 1 $rounds); do
  for spec in "$@"; do
    name=${spec%%:*}; bin=$(realpath "${spec#*:}")
    d=$(mktemp -d); cd $d
    $bin --bind 127.0.0.1:4300 --database-url none >/dev/null 2>&1 &
    pid=$!
    for i in $(seq 1 50); do (echo > /dev/tcp/127.0.0.1/4300) 2>/dev/null && break; sleep 0.1; done
    $LG run --quiet --server 127.0.0.1:4300 --server-pid $pid -n 1000 --rooms 1000 --heartbeat 30s --churn 50 --duration 20s --label $name --out ${TMPDIR:-/tmp}/fanout-$name-$r.json >/dev/null 2>&1
    kill $pid; wait $pid 2>/dev/null
    jq -r --arg n $name --arg r $r '"\($n) r\($r): p50 \(.latency.p50_ms) p90 \(.latency.p90_ms) p99 \(.latency.p99_ms) max \(.latency.max_ms) diffs/s \(.diff_deliveries_per_s|floor) cores \(.server.cores_steady) us/conn \(.server.cpu_us_per_connect|floor)"' ${TMPDIR:-/tmp}/fanout-$name-$r.json
    cd /; rm -rf $d
  done
done
