#!/usr/bin/env bash
# Same seeds, same results: runs the simulator's scenarios with fixed seeds and keeps what each prints, less the
# wall-clock figures, with its per-round CSV, so that two builds (before and after a change meant to keep behaviour) can be compared with
# diff. Each scenario runs once with its options derived from the seed (loss, duplication, drift, slow nodes and
# delays as the seed says) and once on a clean network.
# Usage: bench/sim-identity.sh OUT_DIR [SIMULATOR]   (default: this tree's release build)
#   SIZE=1000 BIG=10000 set the sizes (join also runs at BIG; BIG=0 skips it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: bench/sim-identity.sh OUT_DIR [SIMULATOR]}
sim=${2:-}
if [ -z "$sim" ]; then
  (cd "$root" && swift build -c release --product equicast >/dev/null)
  sim="$root/.build/release/equicast"
fi
size=${SIZE:-1000}
big=${BIG:-10000}
mkdir -p "$out"
run() {  # name args...
  local name=$1
  shift
  # Exit codes 3-5 are results (a violation or liveness failure is printed, and must match too).
  "$sim" sim "$@" --csv "$out/$name.csv" >"$out/$name.raw" 2>&1 || true
  sed -E 's/^(simulation: [0-9]+ events).*/\1/' "$out/$name.raw" >"$out/$name.txt"
  rm "$out/$name.raw"
  echo "$name: $(grep -E '^result:' "$out/$name.txt" || echo 'no result line')"
}
for seed in 1 7; do
  for scenario in join crash partition churn; do
    run "$scenario-$size-seed$seed" "$scenario" -n "$size" --seed "$seed" --duration 20
    run "$scenario-$size-seed$seed-clean" "$scenario" -n "$size" --seed "$seed" --duration 20 --clean
  done
  run "rollout-$size-seed$seed" rollout -n "$size" --seed "$seed" --release-kib 1024 --bandwidth 20000000
  run "rollout-$size-seed$seed-clean" rollout -n "$size" --seed "$seed" --release-kib 1024 --bandwidth 20000000 \
    --clean
done
if [ "$big" -gt 0 ]; then
  run "join-$big-seed1-clean" join -n "$big" --seed 1 --duration 20 --clean
fi
