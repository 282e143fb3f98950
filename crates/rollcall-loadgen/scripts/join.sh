#!/usr/bin/env bash
# join.sh BIN N [strace] (from the repo root; LG= another rollcall-loadgen): ramp N connections (rooms of 10, one track each) against a fresh
# server; prints the server's user/kernel CPU per connect, frames per connect and, with
# `strace`, syscalls per connect.
set -u
bin=$(realpath "$1"); n=$2; mode=${3:-}
LG=$(realpath "${LG:-target/release/rollcall-loadgen}")
d=$(mktemp -d); cd $d
$bin --bind 127.0.0.1:4300 --database-url none >/dev/null 2>&1 &
pid=$!
for i in $(seq 1 50); do (echo > /dev/tcp/127.0.0.1/4300) 2>/dev/null && break; sleep 0.1; done
read u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat)
if [ "$mode" = strace ]; then strace -c -f -p $pid -o $d/strace.txt & sp=$!; sleep 1; fi
$LG run --quiet --server 127.0.0.1:4300 --server-pid $pid -n $n --rooms 10 --heartbeat 600s --duration 1s --settle 0s --out $d/s.json >/dev/null 2>&1
read u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat)
curl -s 127.0.0.1:4300/metrics | grep -E "^rollcall_(messages_in|messages_out|diffs_sent|joins)_total" > $d/m.txt
if [ "$mode" = strace ]; then kill -INT $sp; wait $sp; fi
kill $pid; wait $pid 2>/dev/null
echo "user_us_per_conn=$(( (u1-u0)*10000/n )) sys_us_per_conn=$(( (s1-s0)*10000/n ))"
jq -r '"summary: cpu_us_per_connect \(.server.cpu_us_per_connect|floor) held \(.connections_held)"' $d/s.json
awk -v n=$n '{printf "%s per connect: %.2f\n", $1, $2/n}' $d/m.txt
if [ "$mode" = strace ]; then awk -v n=$n 'NR>2 && $4 ~ /^[0-9]+$/ {printf "%-16s %6.2f per connect\n", $NF, $4/n}' $d/strace.txt | sort -k2 -rn | head -14; fi
cd /; rm -rf $d
