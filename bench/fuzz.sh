#!/usr/bin/env bash
# Fuzzes the frame decoder and the inflate path with libFuzzer and AddressSanitizer, SECONDS each.
# Usage: bench/fuzz.sh [SECONDS]   (default 60). Prints executions and findings per target; exits non-zero on
# a finding, leaving the crashing input in bench/out/fuzz/TARGET/.
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bench/out/fuzz"
mkdir -p "$out/modules"
flags=(-sanitize=fuzzer,address -parse-as-library -O -g -I "$out/modules" -I "$root/Sources/CSodium"
  -I "$root/Sources/CZlib")

build_module() {
  local module=$1
  swiftc "${flags[@]}" -module-name "$module" -emit-module -emit-module-path "$out/modules/$module.swiftmodule" \
    -emit-library -static -o "$out/modules/lib$module.a" $(find "$root/Sources/$module" -name '*.swift' | sort)
}
echo "fuzz: building instrumented modules"
for m in EquicastCrypto EquicastCompression EquicastCore; do build_module "$m"; done

run_target() {
  local name=$1 source=$2
  local dir="$out/$name"
  mkdir -p "$dir/corpus" "$dir/findings"
  swiftc "${flags[@]}" -use-ld=lld -module-name "$name" "$root/bench/fuzz/$source" -L "$out/modules" \
    -lEquicastCore -lEquicastCompression -lEquicastCrypto -lsodium -lz -o "$dir/$name"
  # Seeds: the known-answer frames and zlib stream, each behind every mode byte.
  python3 - "$root/Sources/EquicastAgent/KnownAnswerVectors.swift" "$dir/corpus" "$name" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
vec = dict(re.findall(r'static let (\w+) = "([0-9a-f]+)"', text))
names = ["frameSealed", "frameMAC"] if sys.argv[3] == "frame" else ["zlibStream"]
for n in names:
    for mode in (0, 1, 2, 0x80, 0x81, 0x3e):
        open(f"{sys.argv[2]}/{n}-{mode}", "wb").write(bytes([mode]) + bytes.fromhex(vec[n]))
PY
  echo "fuzz: $name for $seconds s"
  local log="$dir/run.log"
  set +e
  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$dir/$name" -max_total_time="$seconds" \
    -print_final_stats=1 -artifact_prefix="$dir/findings/" "$dir/corpus" >"$log" 2>&1
  local status=$?
  set -e
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  local findings
  findings=$(find "$dir/findings" -type f | wc -l)
  echo "fuzz: $name: ${execs:-?} executions, $findings findings, corpus $(ls "$dir/corpus" | wc -l) inputs, exit $status"
  if [ "$findings" -gt 0 ] || [ "$status" -ne 0 ]; then tail -30 "$log"; return 1; fi
}
run_target frame FrameFuzz.swift
run_target inflate InflateFuzz.swift
