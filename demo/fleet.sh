#!/usr/bin/env bash
# The local demo fleet (make demo): eight agents on loopback, one of them the aarch64 Embedded build under
# qemu. They join through one seed, converge, one is killed with kill -9 and the others mark it failed; then
# every agent is stopped and its files removed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/agents.sh"
trap fleet_cleanup EXIT
arm_binary="$root/cross/out/aarch64/equicastd"
arm_sysroot="$root/cross/sysroot/arm64"

step() { printf '\n== %s\n' "$*"; }

step "a fleet key for this demo: equicast keygen --fleet"
fleet_key
echo "   $fleet_dir/fleet.key (mode $(stat -c %a "$fleet_dir/fleet.key"))"

step "eight agents on 127.0.0.1:$(fleet_port 0)-$(fleet_port 7), joining through agent 0; agent 7 is aarch64 under qemu"
for i in 0 1 2 3 4 5 6; do fleet_start "$i"; done
fleet_start 7 qemu-aarch64-static "$arm_sysroot" "$arm_binary" aarch64-linux-gnu
start=$SECONDS
if ! fleet_wait 30 all_see 8 alive 0 1 2 3 4 5 6 7; then
  echo "the fleet did not converge in 30 s" >&2
  exit 1
fi
echo "   converged in about $((SECONDS - start)) s: every agent sees 8 alive"

step "equicast members (agent 7, the aarch64 one)"
fleet_show 7

victim_id=$(fleet_id 5)
step "kill -9 agent 5 ($victim_id)"
fleet_kill9 5
start=$SECONDS
if ! fleet_wait 20 all_mark "$victim_id" failed 0 1 2 3 4 6 7; then
  echo "the survivors did not mark agent 5 failed in 20 s" >&2
  exit 1
fi
echo "   every survivor marked it failed within about $((SECONDS - start)) s"

step "equicast members (agent 0)"
fleet_show 0

step "equicast status (agent 0)"
"$cli" status --socket "$fleet_dir/n0/control.sock" | head -12

step "stopping: SIGTERM makes each agent announce that it leaves"
for i in 7 6 4 3 2 1 0; do fleet_stop "$i"; done
left=$(pgrep -f "$fleet_dir" || true)
[ -z "$left" ] && echo "   all agents stopped; nothing left running" || { echo "still running: $left" >&2; exit 1; }
