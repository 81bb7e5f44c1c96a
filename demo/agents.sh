# Helpers for scripts that run local fleets of equicastd on loopback (sourced by demo/fleet.sh and
# cross/cluster-test.sh). Every agent started here is stopped by fleet_cleanup, which callers run on EXIT.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
host_agent="$root/.build/debug/equicastd"
cli="$root/.build/debug/equicast"
fleet_dir=$(mktemp -d /tmp/equicast-fleet.XXXXXX)
fleet_base_port=$((10000 + RANDOM % 20000))  # below the ephemeral range (32768 up)
declare -A fleet_pids=()
# Extra agent flags for the next fleet_start calls (cross/snmp-test.sh sets the SNMP ones).
fleet_extra=()
# Faster than the defaults so a demo takes seconds; the same proportions.
fleet_timers=(--GossipInterval 100 --ProbeInterval 500 --ProbeTimeout 200 --HeartbeatTimeout 2500 --SyncInterval 1000)

fleet_cleanup() {
  for pid in "${fleet_pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$fleet_dir"
}

fleet_key() { "$cli" keygen --fleet -o "$fleet_dir/fleet.key" >/dev/null; }

# fleet_release_key: an Ed25519 release key pair for the fleet; agents started afterwards trust its public half.
fleet_release_key() { "$cli" keygen --release -o "$fleet_dir/release.key" >/dev/null; }

# fleet_qemu ARCH: sets runner, sysroot and multiarch for running the cross-built agent of ARCH under qemu.
fleet_qemu() {
  case "$1" in
    aarch64) runner=qemu-aarch64-static; sysroot="$root/cross/sysroot/arm64"; multiarch=aarch64-linux-gnu ;;
    armv7hf) runner=qemu-arm-static; sysroot="$root/cross/sysroot/armhf"; multiarch=arm-linux-gnueabihf ;;
    *) echo "unknown architecture '$1' (aarch64, armv7hf)" >&2; return 2 ;;
  esac
}

fleet_port() { echo $((fleet_base_port + $1)); }

# fleet_start I [qemu-aarch64|qemu-arm SYSROOT BINARY]: starts agent I, joining through agent 0.
fleet_start() {
  local i=$1 runner=${2:-}
  local state="$fleet_dir/n$i"
  mkdir -p "$state"
  local args=(run --BindAddress "127.0.0.1:$(fleet_port "$i")" --StateDirectory "$state"
    --FleetKeyFile "$fleet_dir/fleet.key" --NodeName "node-$i" "${fleet_timers[@]}")
  [ "$i" -eq 0 ] || args+=(--Seeds "127.0.0.1:$(fleet_port 0)")
  args+=("${fleet_extra[@]}")
  # With a release key (fleet_release_key), the agent takes releases: it "installs" by copying the image into
  # its state directory, and its health check is that the copy is there.
  if [ -f "$fleet_dir/release.key.pub" ]; then
    args+=(--ReleasePublicKeyFile "$fleet_dir/release.key.pub" --Product equicast-demo --FirmwareVersion 1
      --InstallCommand "cp \"\$EQUICAST_IMAGE\" $state/firmware.img" --HealthCommand "test -s $state/firmware.img")
  fi
  if [ -n "$runner" ]; then
    local sysroot=$3 binary=$4 multiarch=$5
    "$runner" -L "$sysroot" -E LD_LIBRARY_PATH="$sysroot/lib/$multiarch:$sysroot/usr/lib/$multiarch" \
      "$binary" "${args[@]}" >"$state.log" 2>&1 &
  else
    "$host_agent" "${args[@]}" >"$state.log" 2>&1 &
  fi
  fleet_pids[$i]=$!
}

fleet_members() { "$cli" members --raw --socket "$fleet_dir/n$1/control.sock" 2>/dev/null; }
fleet_show() { "$cli" members --socket "$fleet_dir/n$1/control.sock"; }
# fleet_status_field I FIELD: one field of agent I's status (firmware_version, update_state, ...).
fleet_status_field() {
  "$cli" status --raw --socket "$fleet_dir/n$1/control.sock" 2>/dev/null | awk -F'\t' -v f="$2" '$1==f{print $2}'
}
fleet_id() { fleet_status_field "$1" node; }

# fleet_count I STATE: how many members agent I sees in STATE.
fleet_count() { fleet_members "$1" | awk -F'\t' -v s="$2" 'NR>1 && $3==s' | wc -l; }

# fleet_state_of I ID: the state agent I holds for member ID.
fleet_state_of() { fleet_members "$1" | awk -F'\t' -v id="$2" '$1==id{print $3}'; }

# fleet_wait SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds; fails after SECONDS.
fleet_wait() {
  local limit=$1; shift
  local start=$SECONDS
  until "$@"; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then return 1; fi
    sleep 0.2
  done
}

# all_see N STATE I...: every listed agent sees N members in STATE.
all_see() {
  local n=$1 state=$2; shift 2
  for i in "$@"; do [ "$(fleet_count "$i" "$state")" -eq "$n" ] || return 1; done
}

# all_mark ID STATE I...: every listed agent holds member ID in STATE.
all_mark() {
  local id=$1 state=$2; shift 2
  for i in "$@"; do [ "$(fleet_state_of "$i" "$id")" = "$state" ] || return 1; done
}

# fleet_kill9 I: kills agent I at once (no leave), quietly.
fleet_kill9() {
  kill -9 "${fleet_pids[$1]}" 2>/dev/null || true
  wait "${fleet_pids[$1]}" 2>/dev/null || true
}

# fleet_stop I: SIGTERM (a graceful leave) and wait for the exit.
fleet_stop() {
  kill -TERM "${fleet_pids[$1]}" 2>/dev/null || true
  wait "${fleet_pids[$1]}" 2>/dev/null || true
}
