#!/usr/bin/env bash
# The simulator at fleet scale: for each N (default 100 1000; add 10000 once it fits, see bench/README.md), a join
# through one seed and a crash of 20% of the nodes, on a clean 100 Mbit/s LAN with the agent's default settings.
# Records each run's summary, per-round CSV and convergence plot in bench/results/sim/ and a table in
# bench/results/sim.txt. Seeds are fixed so the runs can be repeated exactly.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 1000)
out="$root/bench/results/sim"
mkdir -p "$out"
(cd "$root" && swift build -c release --product equicast >/dev/null)
sim="$root/.build/release/equicast"
table="$root/bench/results/sim.txt"
{
  echo "equicast sim on $(nproc) cores; clean network, 100 Mbit/s per node, delays 200 us min / 1 ms mean;"
  echo "gossip interval 200 ms, probe interval 1 s, HeartbeatTimeout 5 s (the agent's defaults)."
  echo
} >"$table"
for n in "${sizes[@]}"; do
  for scenario in join crash; do
    log="$out/$scenario-$n.txt"
    /usr/bin/time -f "wall %e s, peak RSS %M KiB" "$sim" sim "$scenario" -n "$n" --seed 1 --clean \
      --bandwidth 100000000 --delay-min 200 --delay-mean 1000 --duration 20 --crash-fraction 0.2 \
      --csv "$out/$scenario-$n.csv" --plot "$out/$scenario-$n.svg" >"$log" 2>&1 || true
    echo "== N = $n, $scenario" | tee -a "$table"
    grep -vE "^SEED=" "$log" | tee -a "$table"
    echo | tee -a "$table"
  done
done
