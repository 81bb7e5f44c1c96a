#!/usr/bin/env bash
# The local demo fleet (make demo): eight agents on loopback, one of them the aarch64 Embedded build under
# qemu. They join through one seed and converge; a signed release pushed to one agent spreads to all eight,
# which install it; one agent is killed with kill -9 and the others mark it failed; then every agent is stopped
# and its files removed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/agents.sh"
trap fleet_cleanup EXIT
arm_binary="$root/cross/out/aarch64/equicastd"
arm_sysroot="$root/cross/sysroot/arm64"

step() { printf '\n== %s\n' "$*"; }

step "keys for this demo: equicast keygen --fleet, equicast keygen --release"
fleet_key
fleet_release_key
echo "   $fleet_dir/fleet.key (mode $(stat -c %a "$fleet_dir/fleet.key")): seals every packet between agents"
echo "   $fleet_dir/release.key (mode $(stat -c %a "$fleet_dir/release.key")): signs releases; the agents trust"
echo "   release.key.pub and run firmware version 1 of product equicast-demo"

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

step "a signed release: sample image v2 (4 MiB), equicast release build --version 2"
python3 "$root/firmware-samples/make_images.py" -o "$fleet_dir/samples" >/dev/null
image="$fleet_dir/samples/sample-4m-v2.img"
"$cli" release build "$image" --version 2 --product equicast-demo --key "$fleet_dir/release.key" \
  -o "$fleet_dir/v2.eqr" >/dev/null
"$cli" release inspect "$fleet_dir/v2.eqr" | sed 's/^/   /' | head -12

step "equicast rollout push v2.eqr --agent 127.0.0.1:$(fleet_port 0) (agent 0 only; the fleet does the rest)"
"$cli" rollout push "$fleet_dir/v2.eqr" --agent "127.0.0.1:$(fleet_port 0)" --fleet-key "$fleet_dir/fleet.key"

step "equicast rollout status --watch (asking agent 3) until every agent runs version 2"
start=$SECONDS
"$cli" rollout status --agent "127.0.0.1:$(fleet_port 3)" --fleet-key "$fleet_dir/fleet.key" --watch --within 120
echo "   done in about $((SECONDS - start)) s"

step "the result, agent by agent: version, update state, and the installed image's hash against the source"
want=$(sha256sum <"$image" | cut -d' ' -f1)
for i in 0 1 2 3 4 5 6 7; do
  got=$(sha256sum <"$fleet_dir/n$i/firmware.img" 2>/dev/null | cut -d' ' -f1 || true)
  verdict="matches the source image"
  [ "$got" = "$want" ] || verdict="DOES NOT match the source image"
  printf '   agent %d: version %s, %s, firmware.img %s\n' "$i" "$(fleet_status_field "$i" firmware_version)" \
    "$(fleet_status_field "$i" update_state)" "$verdict"
  [ "$got" = "$want" ] || exit 1
done

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
