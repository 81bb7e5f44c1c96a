#!/usr/bin/env bash
# The cross-built agent with SNMP, under qemu, as the AgentX subagent of a private snmpd (own config, loopback
# port, AgentX socket in a temp dir): snmpget and snmpwalk by name answer as they do from the host build, with
# its node name and id, and its member table listing it and the host agent, both alive.
# Usage: cross/snmp-test.sh [aarch64|armv7hf]   (after cross/build.sh --arch ARCH --snmp and swift build)
set -euo pipefail
arch=${1:-aarch64}
here=$(cd "$(dirname "$0")" && pwd)
binary="$here/out/$arch-snmp/equicastd"
[ -x "$binary" ] || { echo "snmp-test.sh: build it first: cross/build.sh --arch $arch --snmp" >&2; exit 1; }
ietf_mibs=${IETF_MIBS:-$(cd "$here/../.." && pwd)/shared/mibs/ietf}
source "$here/../demo/agents.sh"
fleet_qemu "$arch"

snmp_dir="$fleet_dir/snmp"
mkdir -p "$snmp_dir/persist" "$snmp_dir/manager"
port=$(fleet_port 18)
cat >"$snmp_dir/snmpd.conf" <<CONF
master agentx
agentXSocket $snmp_dir/agentx.sock
agentXPerms 0660 0770
agentaddress udp:127.0.0.1:$port
rocommunity public 127.0.0.1
CONF
SNMP_PERSISTENT_DIR="$snmp_dir/persist" MIBS= /usr/sbin/snmpd -f -Lf "$snmp_dir/snmpd.log" -C -c "$snmp_dir/snmpd.conf" \
  -I -smux </dev/null >/dev/null 2>&1 &
snmpd_pid=$!
cleanup() { kill -9 "$snmpd_pid" 2>/dev/null || true; fleet_cleanup; }
trap cleanup EXIT
for _ in $(seq 50); do [ -S "$snmp_dir/agentx.sock" ] && break; sleep 0.1; done

manager() {  # manager TOOL ARGS...: an SNMP manager with the MIB loaded, against the private snmpd
  local tool=$1; shift
  SNMP_PERSISTENT_DIR="$snmp_dir/manager" "$tool" -v2c -c public -t 2 -r 1 -M "$root/mibs:$ietf_mibs" \
    -m EQUICAST-LITE-MIB "127.0.0.1:$port" "$@" 2>&1
}

fleet_key
fleet_start 0
fleet_extra=(--SNMPAgentX on --SNMPAgentXSocket "$snmp_dir/agentx.sock" --SNMPPingInterval 1)
fleet_start 1 "$runner" "$sysroot" "$binary" "$multiarch"
fleet_extra=()
if ! fleet_wait 30 all_see 2 alive 0 1; then
  echo "FAIL: the $arch agent and the host agent did not both see 2 alive" >&2
  tail -5 "$fleet_dir/n1.log" >&2
  exit 1
fi
id=$(fleet_id 1)
answer=""
for _ in $(seq 50); do
  answer=$(manager snmpget EQUICAST-LITE-MIB::equicastNodeName.0 EQUICAST-LITE-MIB::equicastNodeId.0 || true)
  grep -q "equicastNodeName.0 = STRING: node-1" <<<"$answer" && break
  sleep 0.2
done
if ! grep -q "equicastNodeName.0 = STRING: node-1" <<<"$answer" || ! grep -q "equicastNodeId.0 = STRING: $id" <<<"$answer"; then
  echo "FAIL: snmpget of the $arch subagent: $answer" >&2
  tail -5 "$fleet_dir/n1.log" >&2
  exit 1
fi
echo "PASS  $arch agent (qemu) answers snmpget by name: node-1, id $id"
# The subagent's snapshot is refreshed once a second: allow it to catch up with the join.
alive=0
for _ in $(seq 50); do
  walk=$(manager snmpwalk EQUICAST-LITE-MIB::equicastMemberState)
  alive=$(grep -c "INTEGER: alive(1)" <<<"$walk" || true)
  [ "$alive" -eq 2 ] && break
  sleep 0.2
done
if [ "$alive" -ne 2 ]; then
  echo "FAIL: the $arch agent's member table: $walk" >&2
  exit 1
fi
echo "PASS  $arch agent's member table (snmpwalk): 2 members, alive"
