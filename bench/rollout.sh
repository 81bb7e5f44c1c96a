#!/usr/bin/env bash
# A 16 MiB release to N = 8 and 16 hosts (or the sizes given) over 20 Mbit/s links in network namespaces:
# Equicast's swarm next to nginx serving the same file to N curl clients, in one run, with the physical lower
# bound and the ratios; then the bytes a v1 -> v2 update of the 16 MiB sample moves. Measures the Embedded x86_64
# build of equicastd, the binary a device runs. Needs root (namespaces, tc, a tmpfs); installs nginx-light,
# curl and iproute2 when missing. Writes bench/results/rollout.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(8 16)
[ "$(id -u)" = 0 ] || { echo "rollout.sh: needs root (network namespaces, tc, mount)" >&2; exit 1; }
if ! command -v nginx >/dev/null || ! command -v curl >/dev/null || ! command -v tc >/dev/null; then
  apt-get install -y -qq nginx-light curl iproute2 >/dev/null
fi
# The package's own nginx service, if it started, is not part of the run.
if command -v service >/dev/null; then service nginx stop >/dev/null 2>&1 || true; fi
if pgrep -x equicastd >/dev/null; then
  echo "rollout.sh: equicastd agents are already running; stop them first (they would share the CPU)" >&2
  exit 1
fi
"$root/cross/build.sh" --arch x86_64 >/dev/null
(cd "$root" && swift build -c release --product equicast >/dev/null)
samples="$root/bench/out/samples"
mkdir -p "$samples" "$root/bench/results"
# Cut every time (4 s) with the CLI just built: releases cut by an older chunker would time its rule, not today's.
PATH="$root/.build/release:$PATH" "$root/firmware-samples/make-samples.sh" "$samples" >/dev/null
python3 "$root/bench/rollout.py" --agent "$root/cross/out/x86_64/equicastd" --cli "$root/.build/release/equicast" \
  --samples "$samples" "${sizes[@]}" | tee "$root/bench/results/rollout.txt"
