#!/usr/bin/env bash
# Throughput of seal, open, BLAKE2b, deflate and inflate, and the cost of an Ed25519 signature and check, through
# Equicast's wrappers (equicast-bench, SwiftPM
# release build) next to the same operations in C calling libsodium and zlib directly (bench/crypto/direct.c),
# in the same run, interleaved, median of 5. Writes bench/results/crypto.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bench/out"
mkdir -p "$out" "$root/bench/results"
cc -O2 -o "$out/direct" "$root/bench/crypto/direct.c" $(pkg-config --cflags --libs libsodium zlib)
(cd "$root" && swift build -c release --product equicast-bench >/dev/null)
swift_bench="$root/.build/release/equicast-bench"
reps=5

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# measure OP SIZE ITERS: runs C and Swift interleaved $reps times; sets c_ns and s_ns to their median times.
measure() {
  local c_times=() s_times=()
  for _ in $(seq $reps); do
    c_times+=("$("$out/direct" "$1" "$2" "$3")")
    s_times+=("$("$swift_bench" "$1" "$2" "$3")")
  done
  c_ns=$(printf '%s\n' "${c_times[@]}" | median)
  s_ns=$(printf '%s\n' "${s_times[@]}" | median)
}

report="$out/crypto.txt"
{
  echo "Equicast crypto/compression wrappers vs direct C calls ($(date -u +%Y-%m-%d), $(nproc) cores,"
  echo "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); libsodium $(pkg-config --modversion libsodium), zlib $(pkg-config --modversion zlib))"
  echo "Median of $reps interleaved runs; MB/s = 10^6 bytes of input per second; overhead = C / Swift - 1."
  printf "%-8s %8s %10s %12s %12s %9s\n" op size iters "C MB/s" "Swift MB/s" overhead
  for op in seal open blake2b deflate inflate; do
    for size in 1024 65536; do
      total=$((256 << 20))
      [ "$op" = deflate ] && total=$((32 << 20))
      iters=$((total / size))
      measure "$op" "$size" "$iters"
      awk -v op="$op" -v size="$size" -v iters="$iters" -v c="$c_ns" -v s="$s_ns" 'BEGIN {
        bytes = size * iters
        printf "%-8s %8d %10d %12.1f %12.1f %8.1f%%\n", op, size, iters, bytes / c * 1000, bytes / s * 1000, (s / c - 1) * 100
      }'
    done
  done
  echo
  echo "Ed25519 on a member statement (32 bytes: alive at an incarnation and an IPv4 address) and a status"
  echo "statement (57 bytes); us per operation. A node signs once per statement it makes (a start, a refutation,"
  echo "a leave, a status change) and verifies once per statement of another node it has not seen: at 10,000"
  echo "members, one check of each member per incarnation is 10,000 checks, about half a second of one core here."
  printf "%-8s %8s %10s %12s %12s %9s\n" op size iters "C us/op" "Swift us/op" overhead
  for op in sign verify; do
    for size in 32 57; do
      iters=4000
      measure "$op" "$size" "$iters"
      awk -v op="$op" -v size="$size" -v iters="$iters" -v c="$c_ns" -v s="$s_ns" 'BEGIN {
        printf "%-8s %8d %10d %12.1f %12.1f %8.1f%%\n", op, size, iters, c / iters / 1000, s / iters / 1000, (s / c - 1) * 100
      }'
    done
  done
} | tee "$report"
cp "$report" "$root/bench/results/crypto.txt"
