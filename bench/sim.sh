#!/usr/bin/env bash
# The simulator at fleet scale: for each N (default 100 1,000 10,000), a join through one seed and a crash of 20%
# of the nodes, on a clean 100 Mbit/s LAN with the agent's default settings; for N >= 1,000 the crash again with
# faster failure detection (ProbeInterval 200 ms, ProbeTimeout 100 ms, HeartbeatTimeout 2 s; gossip stays at
# 200 ms). Records each run's summary, per-round CSV and convergence plot in bench/results/sim/ and a table in
# bench/results/sim.txt. Seeds are fixed so the runs can be repeated exactly. The simulator runs nodes on every
# online core (its results do not depend on how many); nothing else should run meanwhile if the wall times are
# to mean anything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 1000 10000)
out="$root/bench/results/sim"
mkdir -p "$out"
(cd "$root" && swift build -c release --product equicast >/dev/null)
sim="$root/.build/release/equicast"
table="$root/bench/results/sim.txt"
{
  echo "equicast sim on $(nproc) cores; clean network, 100 Mbit/s per node, delays 200 us min / 1 ms mean;"
  echo "gossip interval 200 ms; probe interval 1 s and HeartbeatTimeout 5 s (the agent's defaults) unless"
  echo "the run says 'fast detection'."
  echo
} >"$table"
run() {  # name title extra-args...
  local name=$1 title=$2 log
  shift 2
  log="$out/$name.txt"
  /usr/bin/time -f "wall %e s, peak RSS %M KiB" "$sim" sim "$@" --seed 1 --clean \
    --bandwidth 100000000 --delay-min 200 --delay-mean 1000 --duration "${duration:-20}" --crash-fraction 0.2 \
    --csv "$out/$name.csv" --plot "$out/$name.svg" >"$log" 2>&1 || true
  echo "== $title" | tee -a "$table"
  grep -vE "^SEED=" "$log" | tee -a "$table"
  echo | tee -a "$table"
}
for n in "${sizes[@]}"; do
  run "join-$n" "N = $n, join" join -n "$n"
  run "crash-$n" "N = $n, crash" crash -n "$n"
  if [ "$n" -ge 10000 ]; then
    # The issue's speed target: 60 simulated seconds at this size (the join, then a quiet fleet) in under 2 minutes.
    duration=60 run "join-60s-$n" "N = $n, join, 60 simulated seconds" join -n "$n" --duration 60
  fi
  if [ "$n" -ge 1000 ]; then
    run "crash-fast-$n" "N = $n, crash, fast detection" crash -n "$n" \
      --probe-interval 200 --probe-timeout 100 --heartbeat-timeout 2000
  fi
done
