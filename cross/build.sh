#!/usr/bin/env bash
# Builds Equicast's device code (every device target and equicastd) in Embedded Swift for aarch64, armv7
# hard-float and x86_64, links it against the target's libsodium and zlib (and net-snmp with --snmp), prints
# stripped sizes and dynamic dependencies, and with --test runs `equicastd selftest` on the target (qemu-user
# for ARM, natively for x86_64).
#
# Usage: cross/build.sh [--arch aarch64|armv7hf|x86_64|all] [--snmp] [--test]
# Output: cross/out/ARCH[-snmp]/equicastd (stripped) and equicastd.debug (with symbols).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
swift_bin=$(dirname "$(readlink -f "$(command -v swiftc)")")
swiftc="$swift_bin/swiftc"
clang="$swift_bin/clang"
objcopy="$swift_bin/llvm-objcopy"
embedded_lib="$swift_bin/../lib/swift/embedded"

arches="aarch64 armv7hf x86_64"
snmp=""
run_tests=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) shift; [ "${1:-}" = all ] || arches="${1:?--arch needs a value}" ;;
    --snmp) snmp=1 ;;
    --test) run_tests=1 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Device modules in dependency order. Their source files are whatever *.swift files their Sources folders hold,
# so a new file is never left out; a new Sources folder must be placed in one of these lists, or the build stops.
device_modules="EquicastCrypto EquicastCompression EquicastCore EquicastPosix EquicastAgent"
snmp_modules="EquicastSNMP"
c_modules="CSodium CZlib CNetSNMP CEquicastShims"
host_only="equicast EquicastSim EquicastBench CJemalloc"
for dir in "$root"/Sources/*/; do
  name=$(basename "$dir")
  case " $device_modules $snmp_modules $c_modules $host_only equicastd " in
    *" $name "*) ;;
    *) echo "build.sh: Sources/$name is neither device code nor host-only; add it to a list in cross/build.sh" >&2
       exit 1 ;;
  esac
done

# Swift's and clang's target names, the Debian architecture, and extra C flags, for each of our arch names.
configure() {
  case "$1" in
    aarch64)
      swift_target=aarch64-none-none-elf; clang_target=aarch64-unknown-linux-gnu; debian_arch=arm64
      extra_cflags=""; qemu="qemu-aarch64-static"; multiarch=aarch64-linux-gnu
      # -O, not -Osize: -Osize was seen to miscompile a String held in a Dictionary on aarch64 (CROSS-NOTES.md).
      opt="-O" ;;
    armv7hf)
      swift_target=armv7-none-none-eabi; clang_target=armv7-unknown-linux-gnueabihf; debian_arch=armhf
      extra_cflags="-mfloat-abi=hard -mfpu=vfpv3-d16 -mthumb"; qemu="qemu-arm-static"
      multiarch=arm-linux-gnueabihf; opt="-Osize" ;;
    x86_64)
      swift_target=x86_64-unknown-linux-gnu; clang_target=x86_64-unknown-linux-gnu; debian_arch=""
      extra_cflags=""; qemu=""; multiarch=x86_64-linux-gnu; opt="-Osize" ;;
    *) echo "build.sh: unknown architecture '$1' (aarch64, armv7hf, x86_64)" >&2; exit 2 ;;
  esac
}

build_arch() {
  local arch=$1
  configure "$arch"
  local sysroot=/
  if [ -n "$debian_arch" ]; then
    "$here/sysroot.sh" "$debian_arch" ${snmp:+--snmp}
    sysroot="$here/sysroot/$debian_arch"
  fi
  local out="$here/out/$arch${snmp:+-snmp}"
  local mods="$out/modules"
  rm -rf "$out"; mkdir -p "$mods"

  local xcc=()
  for f in $extra_cflags; do xcc+=(-Xcc "$f"); done
  # The machine outliner folds repeated instruction sequences into calls (on by default only at -Oz, which Swift
  # does not offer): -5% on aarch64, -4% on x86_64.
  local swift_flags=(-enable-experimental-feature Embedded -target "$swift_target" -wmo -parse-as-library "$opt"
    -Xllvm -enable-machine-outliner=always
    -Xfrontend -function-sections -I "$mods" -I "$root/Sources/CSodium" -I "$root/Sources/CZlib"
    -I "$root/Sources/CEquicastShims/include" "${xcc[@]}")
  if [ "$sysroot" != / ]; then
    swift_flags+=(-Xfrontend -clang-target -Xfrontend "$clang_target" -sdk "$sysroot")
  fi
  local modules="$device_modules"
  local libs=(-lsodium -lz -lm)
  if [ -n "$snmp" ]; then
    swift_flags+=(-I "$root/Sources/CNetSNMP" -D EQUICAST_SNMP)
    modules="EquicastCrypto EquicastCompression EquicastCore EquicastPosix $snmp_modules EquicastAgent"
    libs=(-lnetsnmpagent -lnetsnmp "${libs[@]}")
  fi

  echo "== $arch${snmp:+ with SNMP}: compiling"
  "$clang" --target="$clang_target" ${sysroot:+--sysroot="$sysroot"} -fPIC -O2 -ffunction-sections $extra_cflags \
    -I "$root/Sources/CEquicastShims/include" -c "$root/Sources/CEquicastShims/shim.c" -o "$out/CEquicastShims.o"
  for module in $modules; do
    local sources=()
    while IFS= read -r -d '' f; do sources+=("$f"); done < <(find "$root/Sources/$module" -name '*.swift' -print0 | sort -z)
    [ ${#sources[@]} -gt 0 ] || { echo "build.sh: Sources/$module has no Swift files" >&2; exit 1; }
    "$swiftc" "${swift_flags[@]}" -module-name "$module" -emit-module -emit-module-path "$mods/$module.swiftmodule" \
      -c "${sources[@]}" -o "$out/$module.o"
  done
  local main_sources=()
  while IFS= read -r -d '' f; do main_sources+=("$f"); done < <(find "$root/Sources/equicastd" -name '*.swift' -print0 | sort -z)
  "$swiftc" "${swift_flags[@]}" -module-name equicastd -c "${main_sources[@]}" -o "$out/equicastd.o"

  echo "== $arch${snmp:+ with SNMP}: linking"
  local link_target=$clang_target
  "$clang" --target="$link_target" ${sysroot:+--sysroot="$sysroot"} -fuse-ld=lld -pie $extra_cflags \
    -Wl,--gc-sections -Wl,--icf=all "$out"/*.o "$embedded_lib/$swift_target/libswiftUnicodeDataTables.a" \
    -L "$sysroot/usr/lib/$multiarch" -L "$sysroot/lib/$multiarch" "${libs[@]}" -o "$out/equicastd.debug"
  "$objcopy" --strip-all "$out/equicastd.debug" "$out/equicastd"
  local size
  size=$(stat -c %s "$out/equicastd")
  echo "== $arch${snmp:+ with SNMP}: equicastd stripped size: $size bytes ($((size / 1024)) KiB)"
  echo "   needs: $(readelf -d "$out/equicastd" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
  # The budget is for what ships to devices (the ARM builds); x86_64 code is larger for the same source, and
  # that build is for testing on the host.
  if [ -z "$snmp" ] && [ "$arch" != x86_64 ] && [ "$size" -ge $((512 * 1024)) ]; then
    echo "build.sh: $arch equicastd without SNMP is $size bytes, over the 512 KiB budget" >&2
    exit 1
  fi

  if [ -n "$run_tests" ]; then
    echo "== $arch${snmp:+ with SNMP}: equicastd selftest${qemu:+ under $qemu}"
    if [ -n "$qemu" ]; then
      SWIFT_BACKTRACE=enable=no "$qemu" -L "$sysroot" \
        -E LD_LIBRARY_PATH="$sysroot/lib/$multiarch:$sysroot/usr/lib/$multiarch" "$out/equicastd" selftest
    else
      "$out/equicastd" selftest
    fi
  fi
}

for arch in $arches; do build_arch "$arch"; done
