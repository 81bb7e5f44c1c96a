#!/usr/bin/env bash
# The cross-built agent, under qemu, joins a fleet of host-built agents on loopback: all four must see four
# alive; then the cross-built agent is killed with kill -9 and the host agents must mark it failed.
# Usage: cross/cluster-test.sh [aarch64|armv7hf]   (after cross/build.sh --arch ARCH and swift build)
set -euo pipefail
arch=${1:-aarch64}
here=$(cd "$(dirname "$0")" && pwd)
binary="$here/out/$arch/equicastd"
[ -x "$binary" ] || { echo "cluster-test.sh: build it first: cross/build.sh --arch $arch" >&2; exit 1; }
source "$here/../demo/agents.sh"
fleet_qemu "$arch"
trap fleet_cleanup EXIT

fleet_key
for i in 0 1 2; do fleet_start "$i"; done
fleet_start 3 "$runner" "$sysroot" "$binary" "$multiarch"
if ! fleet_wait 30 all_see 4 alive 0 1 2 3; then
  echo "FAIL: the $arch agent and the host agents did not all see 4 alive" >&2
  for i in 0 1 2 3; do echo "-- agent $i"; fleet_members "$i" || true; tail -5 "$fleet_dir/n$i.log"; done >&2
  exit 1
fi
echo "PASS  $arch agent (qemu) and 3 host agents all see 4 alive"
victim=$(fleet_id 3)
fleet_kill9 3
if ! fleet_wait 15 all_mark "$victim" failed 0 1 2; then
  echo "FAIL: the host agents did not mark the killed $arch agent failed" >&2
  exit 1
fi
echo "PASS  kill -9 of the $arch agent: every host agent marks it failed"
