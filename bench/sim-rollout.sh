#!/usr/bin/env bash
# The rollout scenario at fleet scale: a signed release of random bytes (zlib cannot shrink it) handed to node 0
# once the fleet has joined, spread by the real release code, with every node's upload and download limited to
# the same rate. Prints, per run, when 50/90/100% of the nodes had verified it against the lower bound for those
# rates, and how many copies the origin uploaded. Records each run's summary, CSV and plot in
# bench/results/sim-rollout/ and a table in bench/results/sim-rollout.txt. Fixed seeds.
# Usage: bench/sim-rollout.sh [N:KIB:BITS_PER_S[:AT_S] ...]
#   (default 100:4096:20000000 1000:1024:20000000; AT_S is when node 0 gets the release, for sizes whose join
#   takes longer than the derived moment, e.g. 10000:1024:20000000:6, which needs about 13 GiB and half an hour
#   on 2 cores.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(100:4096:20000000 1000:1024:20000000)
out="$root/bench/results/sim-rollout"
mkdir -p "$out"
(cd "$root" && swift build -c release --product equicast >/dev/null)
sim="$root/.build/release/equicast"
table="$root/bench/results/sim-rollout.txt"
{
  echo "equicast sim rollout on $(nproc) cores; clean network, delays 200 us min / 1 ms mean, gossip 200 ms;"
  echo "times are after the hand-over to node 0; 'x' is the multiple of the lower bound max(F/u, F/d, (N-1)F/(u+(N-1)u))."
  echo
} >"$table"
for spec in "${runs[@]}"; do
  IFS=: read -r n kib bps at <<<"$spec"
  name="rollout-n$n-${kib}k-$((bps / 1000000))mbit"
  log="$out/$name.txt"
  /usr/bin/time -f "wall %e s, peak RSS %M KiB" "$sim" sim rollout -n "$n" --release-kib "$kib" --bandwidth "$bps" \
    ${at:+--rollout-at "$at"} --seed 1 --clean --delay-min 200 --delay-mean 1000 --csv "$out/$name.csv" --plot "$out/$name.svg" >"$log" 2>&1 || true
  echo "== N = $n, $kib KiB image, $((bps / 1000000)) Mbit/s per node" | tee -a "$table"
  grep -vE "^SEED=" "$log" | tee -a "$table"
  echo | tee -a "$table"
done
