#!/usr/bin/env bash
# Assembles a target sysroot from Debian's packages, without installing any foreign-architecture package:
# apt-get download fetches the .debs, dpkg -x unpacks them into cross/sysroot/ARCH. Re-running it reuses
# what is there already. Usage: cross/sysroot.sh arm64|armhf [--snmp]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
arch=${1:?usage: cross/sysroot.sh arm64|armhf [--snmp]}
snmp=${2:-}
case "$arch" in
  arm64) triple=aarch64-linux-gnu ;;
  armhf) triple=arm-linux-gnueabihf ;;
  *) echo "sysroot.sh: unknown architecture '$arch' (arm64 or armhf)" >&2; exit 2 ;;
esac

sysroot="$here/sysroot/$arch"
debs="$here/debs/$arch"
mkdir -p "$sysroot" "$debs"

base_packages="libc6 libc6-dev linux-libc-dev libgcc-s1 libgcc-12-dev libsodium23 libsodium-dev zlib1g zlib1g-dev"
snmp_packages="libsnmp40 libsnmp-dev libssl-dev"

stamp="$sysroot/.equicast-sysroot${snmp:+-snmp}"
if [ -f "$stamp" ]; then
  echo "sysroot $arch${snmp:+ (with SNMP)}: present in $sysroot"
  exit 0
fi

# Both ARM architectures are added at once, so one `apt-get update` serves every sysroot.
for foreign in arm64 armhf; do
  dpkg --print-foreign-architectures | grep -qx "$foreign" || dpkg --add-architecture "$foreign"
done

# Mirrors are sometimes mid-sync for one foreign index ("File has unexpected size"): retry, then go on and let
# the downloads of the packages actually needed decide (CROSS-NOTES.md).
updated="$here/debs/.apt-updated"
if [ ! -f "$updated" ]; then
  for attempt in 1 2 3; do
    if apt-get update -qq >/dev/null 2>"$here/debs/apt-update.log"; then break; fi
    echo "apt-get update failed (attempt $attempt of 3), see cross/debs/apt-update.log" >&2
    [ "$attempt" = 3 ] || sleep 15
  done
  touch "$updated"
fi

wanted="$base_packages"
if [ "$snmp" = "--snmp" ]; then
  # libsnmp40's run-time closure (libssl3, libpci3, libsensors5, libwrap0, libperl5.36, ...), for this arch.
  closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "libsnmp40:$arch" 2>/dev/null | grep -E "^[a-z0-9]" | sed "s/:$arch\$//" | \
    grep -vE "^(debconf|perl-base|dpkg|libc-bin|install-info)$" | sort -u | tr '\n' ' ')
  wanted="$wanted $snmp_packages $closure"
fi

cd "$debs"
for pkg in $wanted; do
  if ! ls "${pkg}"_*_"$arch".deb "${pkg}"_*_all.deb >/dev/null 2>&1; then
    apt-get download -q "$pkg:$arch" >/dev/null 2>>"$debs/download.log" || \
      apt-get download -q "$pkg" >/dev/null 2>>"$debs/download.log" || \
      { echo "sysroot.sh: could not download $pkg:$arch (see $debs/download.log)" >&2; exit 1; }
  fi
done
for deb in "$debs"/*.deb; do dpkg -x "$deb" "$sysroot"; done

# Debian's -dev symlinks are absolute (libz.so -> /lib/...); inside a sysroot they must be relative.
find "$sysroot" -type l | while read -r link; do
  target=$(readlink "$link")
  case "$target" in
    /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")" "$link" ;;
  esac
done
touch "$stamp"
echo "sysroot $arch${snmp:+ (with SNMP)}: assembled in $sysroot ($(du -sh "$sysroot" | cut -f1))"
