#!/usr/bin/env bash
# Equicast vs HashiCorp Serf on loopback, N = 16 and 32 (or the sizes given), side by side in one run;
# writes bench/results/membership.txt. Measures the Embedded x86_64 build of equicastd, the binary a device
# runs. Needs Debian's serf and python3-msgpack (installed here when missing and run as root).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(16 32)
if ! command -v serf >/dev/null || ! python3 -c "import msgpack" 2>/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "membership.sh: needs serf and python3-msgpack (apt-get install serf python3-msgpack)" >&2; exit 1; }
  apt-get install -y -qq serf python3-msgpack >/dev/null || true
  # Debian's module serves Debian's python3 only; another python3 first on PATH needs its own.
  python3 -c "import msgpack" 2>/dev/null || pip install -q msgpack
fi
# Idle traffic is read off the loopback interface: other agents running now would be counted too.
if pgrep -f "serf agent" >/dev/null || pgrep -x equicastd >/dev/null; then
  echo "membership.sh: serf or equicastd agents are already running; stop them first" >&2
  exit 1
fi
"$root/cross/build.sh" --arch x86_64 >/dev/null
mkdir -p "$root/bench/results"
python3 "$root/bench/membership.py" "$root/cross/out/x86_64/equicastd" "${sizes[@]}" | tee "$root/bench/results/membership.txt"
