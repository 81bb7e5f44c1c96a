#!/usr/bin/env bash
# Fuzzes every decoder a peer or a file can feed, with libFuzzer and AddressSanitizer: the frame decoder, the
# inflate path, membership and transfer messages (alone, and through a whole node), release files and
# manifests, and what the agent reads (config, state files, key files, control requests).
# Usage: bench/fuzz.sh [SECONDS] [TARGET...]   (default 60 s each, every target). RUNS=N runs each target for N
# executions instead. Prints executions and findings per target; exits non-zero on a finding, leaving the
# crashing input in bench/out/fuzz/TARGET/findings/.
set -euo pipefail
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame inflate message node release agent)
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bench/out/fuzz"
mkdir -p "$out/modules"
flags=(-sanitize=fuzzer,address -parse-as-library -O -g -I "$out/modules" -I "$root/Sources/CSodium"
  -I "$root/Sources/CZlib" -I "$root/Sources/CEquicastShims/include")

build_module() {
  local module=$1
  shift
  swiftc "${flags[@]}" "$@" -module-name "$module" -emit-module -emit-module-path "$out/modules/$module.swiftmodule" \
    -emit-library -static -o "$out/modules/lib$module.a" $(find "$root/Sources/$module" -name '*.swift' | sort)
}
echo "fuzz: building instrumented modules"
for m in EquicastCrypto EquicastCompression EquicastCore; do build_module "$m"; done
if [[ " ${targets[*]} " == *" agent "* ]]; then
  clang -fsanitize=fuzzer-no-link,address -O1 -g -c "$root/Sources/CEquicastShims/shim.c" \
    -I "$root/Sources/CEquicastShims/include" -o "$out/modules/shim.o"
  build_module EquicastPosix
  build_module EquicastAgent -enable-testing
fi

run_target() {
  local name=$1
  shift
  local dir="$out/$name"
  rm -rf "$dir/findings"  # an earlier run's findings are kept as regression tests, not counted again
  mkdir -p "$dir/corpus" "$dir/findings"
  local libs=(-lEquicastCore -lEquicastCompression -lEquicastCrypto)
  [ "$name" = agent ] && libs=(-lEquicastAgent -lEquicastPosix "$out/modules/shim.o" "${libs[@]}")
  swiftc "${flags[@]}" -use-ld=lld -module-name "${name}fuzz" "$@" -L "$out/modules" "${libs[@]}" -lsodium -lz \
    -o "$dir/$name"
  # Seeds: the known-answer frames and zlib stream behind every mode byte; the other targets write their own
  # (valid messages, a release, config and state files) from their initializer.
  python3 - "$root/Sources/EquicastAgent/KnownAnswerVectors.swift" "$dir/corpus" "$name" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
vec = dict(re.findall(r'static let (\w+) = "([0-9a-f]+)"', text))
names = {"frame": ["frameSealed", "frameMAC"], "inflate": ["zlibStream"]}.get(sys.argv[3], [])
for n in names:
    for mode in (0, 1, 2, 0x80, 0x81, 0x3e):
        open(f"{sys.argv[2]}/{n}-{mode}", "wb").write(bytes([mode]) + bytes.fromhex(vec[n]))
PY
  local budget=(-max_total_time="$seconds") what="$seconds s"
  if [ -n "${RUNS:-}" ]; then budget=(-runs="$RUNS") what="$RUNS executions"; fi
  echo "fuzz: $name for $what"
  local log="$dir/run.log"
  local started=$SECONDS
  set +e
  FUZZ_SEED_DIR="$dir/corpus" SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$dir/$name" "${budget[@]}" \
    -print_final_stats=1 -artifact_prefix="$dir/findings/" "$dir/corpus" >"$log" 2>&1
  local status=$?
  set -e
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  local findings
  findings=$(find "$dir/findings" -type f | wc -l)
  echo "fuzz: $name: ${execs:-?} executions in $((SECONDS - started)) s, $findings findings," \
    "corpus $(ls "$dir/corpus" | wc -l) inputs, exit $status"
  if [ "$findings" -gt 0 ] || [ "$status" -ne 0 ]; then tail -30 "$log"; return 1; fi
}
failed=0
for t in "${targets[@]}"; do
  case $t in
    frame) run_target frame "$root/bench/fuzz/FrameFuzz.swift" || failed=1 ;;
    inflate) run_target inflate "$root/bench/fuzz/InflateFuzz.swift" || failed=1 ;;
    message | node | release)
      source="$(tr '[:lower:]' '[:upper:]' <<<"${t:0:1}")${t:1}Fuzz.swift"
      run_target "$t" "$root/bench/fuzz/$source" "$root/bench/fuzz/FuzzSeeds.swift" || failed=1
      ;;
    agent) run_target agent "$root/bench/fuzz/AgentFuzz.swift" || failed=1 ;;
    *) echo "fuzz: unknown target $t" >&2; failed=1 ;;
  esac
done
exit $failed
