#!/usr/bin/env python3
"""Equicast's membership overlay next to HashiCorp Serf (Debian's serf, built on memberlist), in one run.

For N agents of each on loopback, one system at a time, it measures: time until every agent sees all N alive
after a join through one seed; time for a broadcast (Serf: a user event; Equicast: a control broadcast) to reach
the other N-1; loopback bytes per second per agent while idle; RSS per agent; time until every survivor marks a
kill -9'd agent failed. Both encrypt (Serf: -encrypt, AES-GCM; Equicast: XChaCha20-Poly1305) and use their
default LAN timing (Serf's "lan" profile: probe 1 s, probe timeout 500 ms, gossip 200 ms; Equicast: probe
1 s, probe timeout 500 ms to match, gossip 200 ms, HeartbeatTimeout 5 s).

Usage: bench/membership.py EQUICASTD N [N ...]   (EQUICASTD: the agent binary to measure)
"""
import base64
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import msgpack

from agentctl import control_request, kill_all, proc_status_kib, wait_for

IDLE_SECONDS = 20
TRIALS = 3


def lo_bytes():
    with open("/sys/class/net/lo/statistics/rx_bytes") as f:
        return int(f.read())




class SerfRPC:
    """Serf's msgpack RPC: handshake, members, event, stream."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.unpacker = msgpack.Unpacker(raw=False)
        self.seq = 0
        self.call("handshake", {"Version": 1})

    def _read(self):
        while True:
            for obj in self.unpacker:
                return obj
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("serf rpc closed")
            self.unpacker.feed(data)

    def call(self, command, body=None, expect_body=False):
        self.seq += 1
        self.sock.sendall(msgpack.packb({"Command": command, "Seq": self.seq}))
        if body is not None:
            self.sock.sendall(msgpack.packb(body, use_bin_type=True))
        header = self._read()
        if header.get("Error"):
            raise RuntimeError(f"serf {command}: {header['Error']}")
        return self._read() if expect_body else None

    def members(self):
        return {m["Name"]: m["Status"] for m in self.call("members", expect_body=True)["Members"]}


class Fleet:
    """What both fleets share: their processes and their temporary directory."""

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    def stop(self):
        kill_all(self.procs)
        shutil.rmtree(self.dir, ignore_errors=True)


class SerfFleet(Fleet):
    name = "serf"

    def __init__(self, n, base):
        self.n, self.base, self.procs, self.rpc = n, base, {}, {}
        self.dir = tempfile.mkdtemp(prefix="bench-serf-")
        self.key = base64.b64encode(os.urandom(32)).decode()

    def start(self, i):
        args = ["serf", "agent", f"-node=n{i}", f"-bind=127.0.0.1:{self.base + i}",
                f"-rpc-addr=127.0.0.1:{self.base + 1000 + i}", f"-encrypt={self.key}", "-profile=lan",
                "-log-level=err"]
        if i:
            args.append(f"-join=127.0.0.1:{self.base}")
        self.procs[i] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def connect(self, i):
        def ok():
            try:
                self.rpc[i] = SerfRPC(self.base + 1000 + i)
                return True
            except OSError:
                return False
        return wait_for(ok, 10, 0.05) is not None

    def ident(self, i):
        return f"n{i}"

    def states(self, i):
        try:
            return self.rpc[i].members()
        except (OSError, ConnectionError, RuntimeError):
            return {}

    def broadcast_start(self, others):
        streams = {}
        for i in others:
            s = SerfRPC(self.base + 1000 + i)
            s.seq += 1
            s.sock.sendall(msgpack.packb({"Command": "stream", "Seq": s.seq}))
            s.sock.sendall(msgpack.packb({"Type": "user"}))
            s._read()  # ack of the stream request
            streams[i] = s
        self.streams = streams

    def broadcast_send(self, origin):
        self.rpc[origin].call("event", {"Name": "bench", "Payload": b"pause rollout", "Coalesce": False})

    def broadcast_wait(self, timeout):
        pending = dict(self.streams)
        start = time.monotonic()
        while pending and time.monotonic() - start < timeout:
            ready, _, _ = select.select([s.sock for s in pending.values()], [], [], 0.05)
            for i, s in list(pending.items()):
                if s.sock in ready:
                    s.unpacker.feed(s.sock.recv(65536))
                    if sum(1 for _ in s.unpacker) >= 2:  # header and record
                        del pending[i]
        for s in self.streams.values():
            s.sock.close()
        return None if pending else time.monotonic() - start



class EquicastFleet(Fleet):
    name = "equicast"

    def __init__(self, n, base, binary):
        self.n, self.base, self.binary, self.procs = n, base, binary, {}
        self.dir = tempfile.mkdtemp(prefix="bench-equicast-")
        key = os.path.join(self.dir, "fleet.key")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex())
        self.ids = {}

    def sock(self, i):
        return os.path.join(self.dir, f"n{i}", "control.sock")

    def request(self, i, line):
        return control_request(self.sock(i), line)

    def start(self, i):
        state = os.path.join(self.dir, f"n{i}")
        os.makedirs(state, exist_ok=True)
        args = [self.binary, "run", "--BindAddress", f"127.0.0.1:{self.base + i}", "--StateDirectory", state,
                "--FleetKeyFile", os.path.join(self.dir, "fleet.key"), "--ProbeTimeout", "500",
                "--LogLevel", "warning"]
        if i:
            args += ["--Seeds", f"127.0.0.1:{self.base}"]
        self.procs[i] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def connect(self, i):
        def ok():
            for line in self.request(i, "status").splitlines():
                k, _, v = line.partition("\t")
                if k == "node":
                    self.ids[i] = v
                    return True
            return False
        return wait_for(ok, 10, 0.05) is not None

    def ident(self, i):
        return self.ids[i]

    def states(self, i):
        out = {}
        for line in self.request(i, "members").splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) >= 3:
                out[cols[0]] = cols[2]
        return out

    def delivered(self, i):
        for line in self.request(i, "status").splitlines():
            k, _, v = line.partition("\t")
            if k == "events_delivered":
                return int(v)
        return 0

    def broadcast_start(self, others):
        self.others = others
        self.before = {i: self.delivered(i) for i in others}

    def broadcast_send(self, origin):
        self.request(origin, "broadcast pause rollout")

    def broadcast_wait(self, timeout):
        return wait_for(lambda: all(self.delivered(i) > self.before[i] for i in self.others), timeout, 0.005)



def measure(fleet, n, idle):
    """One trial on a fresh fleet; idle traffic and RSS only when `idle` (they vary little between trials).
    Every agent it started is killed when it returns or fails."""
    try:
        return trial(fleet, n, idle)
    finally:
        fleet.stop()


def trial(fleet, n, idle):
    row = {}
    fleet.start(0)
    if not fleet.connect(0):
        raise RuntimeError(f"{fleet.name}: agent 0 did not start")
    t0 = time.monotonic()
    for i in range(1, n):
        fleet.start(i)
    for i in range(1, n):
        if not fleet.connect(i):
            raise RuntimeError(f"{fleet.name}: agent {i} did not start")
    everyone = list(range(n))

    def all_alive():
        return all(sum(1 for s in fleet.states(i).values() if s == "alive") == n for i in everyone)
    took = wait_for(all_alive, 60, 0.005)
    row["join"] = None if took is None else time.monotonic() - t0
    time.sleep(5)  # let join traffic settle
    if idle:
        before = lo_bytes()
        time.sleep(IDLE_SECONDS)
        row["idle"] = (lo_bytes() - before) / IDLE_SECONDS / n
        row["rss"] = sum(proc_status_kib(p.pid, "VmRSS") for p in fleet.procs.values()) / n / 1024
    fleet.broadcast_start(everyone[1:])
    fleet.broadcast_send(0)
    row["broadcast"] = fleet.broadcast_wait(30)
    victim = n - 1
    victim_id = fleet.ident(victim)
    fleet.kill(victim)
    survivors = everyone[:-1]
    row["failure"] = wait_for(lambda: all(fleet.states(i).get(victim_id) == "failed" for i in survivors), 90, 0.02)
    return row


def summary(values):
    """Median, min and max of the trials that finished; None when any trial did not."""
    if not values or any(v is None for v in values):
        return None
    v = sorted(values)
    return v[len(v) // 2], v[0], v[-1]


def fmt(stat, unit):
    if stat is None:
        return "n/a"
    median, low, high = stat
    if low == high:
        return f"{median:.2f} {unit}"
    return f"{median:.2f} {unit} ({low:.2f}-{high:.2f})"


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    binary, sizes = sys.argv[1], [int(a) for a in sys.argv[2:]]
    serf_version = subprocess.run(["serf", "version"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"membership: Equicast ({os.path.basename(binary)}, Embedded x86_64 build) vs Serf ({serf_version}), "
          f"loopback, {os.cpu_count()} cores")
    print(f"times: median of {TRIALS} trials (min-max), each on a fresh fleet; idle traffic over {IDLE_SECONDS} s "
          f"and RSS from the first trial")
    for n in sizes:
        trials = {"serf": [], "equicast": []}
        for t in range(TRIALS):
            # Alternate which system goes first, so neither always runs on a machine the other just warmed.
            fleets = [SerfFleet(n, 21000), EquicastFleet(n, 24000, binary)]
            for fleet in (fleets if t % 2 == 0 else fleets[::-1]):
                trials[fleet.name].append(measure(fleet, n, idle=(t == 0)))
        print(f"\nN = {n}")
        print(f"{'':36}{'Equicast':>24}{'Serf':>24}{'Serf/Equicast':>15}")
        rows = [("join: all see N alive", "join", "s"), ("broadcast reaches N-1", "broadcast", "s"),
                ("kill -9: all survivors mark failed", "failure", "s"),
                ("idle traffic per agent", "idle", "B/s"), ("RSS per agent", "rss", "MiB")]
        for label, key, unit in rows:
            e = summary([r[key] for r in trials["equicast"] if key in r])
            s = summary([r[key] for r in trials["serf"] if key in r])
            ratio = f"{s[0] / e[0]:.1f}x" if e and s and e[0] else "n/a"
            print(f"{label:36}{fmt(e, unit):>24}{fmt(s, unit):>24}{ratio:>15}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
