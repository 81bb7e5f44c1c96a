#!/usr/bin/env python3
"""A 16 MiB release to N hosts over 20 Mbit/s links: Equicast's swarm next to nginx serving N curl clients.

Every host, the origin included, is a network namespace with one veth link to a bridge in a "switch" namespace.
A token bucket filter (tc tbf) limits each link to RATE each way: on the host's side for what it sends, on the
switch's side for what it receives. The origin holds the release: Equicast gets it with `equicast rollout push`
(over the origin's own loopback, which is not limited), nginx serves the same .eqr file from the origin.

For each N, one system at a time, TRIALS trials each on fresh agents:
- Equicast: time from the push until each host has verified every chunk, and until it has installed the image
  (InstallCommand copies it; the copy is compared with the source afterwards); the origin's upload in copies
  of the release; every agent's peak RSS (VmHWM).
- nginx: time until each curl client has the whole file.
The physical lower bound is S / U: the origin must upload every byte at least once, and no host can receive
faster than its link (S / D, equal here). It is printed for the image size and for the bytes actually carried
(the release file: compressed chunks and the manifest).

Then the v1 -> v2 update: the sample 16 MiB image and its v2 (about 1% changed), pushed one after the other to
N hosts; the bytes each host fetched (chunk payloads, the agent's counter) and received on its link (everything,
gossip included, from the interface counters) while v2 spread, against the image size.

Usage: bench/rollout.py --agent EQUICASTD --cli EQUICAST --samples DIR [--trials T] [--rate MBIT] N [N ...]
Needs root, iproute2, nginx and curl. With KEEP_LOGS=DIR in the environment, each Equicast fleet's agent logs and
state directories (without chunks and images) are copied under DIR before they are removed.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from agentctl import control_request, kill_all, proc_status_kib, wait_for

PORT = 7946
HTTP_PORT = 8080
SUBNET = "10.77.0"
PRODUCT = "equicast-sample"
# Samples the machine's CPU jiffies (busy, total) and the switch's ends of the links: what the switch receives on pI,
# host I sent. Arguments: hosts, period, CSV.
LINK_SAMPLER = """
import sys, time
n, period, path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
files = [(open(f"/sys/class/net/p{i}/statistics/rx_bytes"), open(f"/sys/class/net/p{i}/statistics/tx_bytes"))
         for i in range(n)]
stat = open("/proc/stat")
with open(path, "w") as out:
    out.write("t,cpu_busy,cpu_total," + ",".join(f"sent{i},received{i}" for i in range(n)) + "\\n")
    while True:
        stat.seek(0)
        jiffies = [int(x) for x in stat.readline().split()[1:]]
        idle = jiffies[3] + jiffies[4]
        row = [f"{time.monotonic():.3f}", str(sum(jiffies) - idle), str(sum(jiffies))]
        for f in (f for pair in files for f in pair):
            f.seek(0)
            row.append(f.read().strip())
        out.write(",".join(row) + "\\n")
        out.flush()
        time.sleep(period)
"""
# A tmpfs for everything both systems write (agents' state, nginx's files, curl's downloads): the machine's own
# disk is not what is measured. Mounted by main.
SCRATCH = None


def run(*args, check=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


class Network:
    """The switch namespace with its bridge and hosts 0 (the origin) ... n, each on a rate-limited link."""

    def __init__(self, n, rate_mbit):
        self.prefix = f"eqr{os.getpid() % 10000}"
        self.switch = f"{self.prefix}sw"
        self.hosts = [f"{self.prefix}h{i}" for i in range(n + 1)]
        self.delete()  # left over from a killed run with the same pid
        run("ip", "netns", "add", self.switch)
        try:
            # Bridged frames skip iptables here (br_netfilter is loaded on this kernel and would hook them).
            for table in ("iptables", "ip6tables", "arptables"):
                run("ip", "netns", "exec", self.switch, "sysctl", "-qw", f"net.bridge.bridge-nf-call-{table}=0")
            run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
            run("ip", "-n", self.switch, "link", "set", "br0", "up")
            for i, ns in enumerate(self.hosts):
                run("ip", "netns", "add", ns)
                run("ip", "-n", ns, "link", "set", "lo", "up")
                # Both ends are created in the switch namespace, then one is moved into the host's.
                run("ip", "-n", self.switch, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0",
                    "netns", ns)
                run("ip", "-n", self.switch, "link", "set", f"p{i}", "master", "br0", "up")
                run("ip", "-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
                run("ip", "-n", ns, "link", "set", "eth0", "up")
                for where, dev in ((ns, "eth0"), (self.switch, f"p{i}")):
                    run("ip", "netns", "exec", where, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate",
                        f"{rate_mbit}mbit", "burst", "32kb", "latency", "200ms")
        except Exception:
            self.delete()
            raise

    @staticmethod
    def address(i):
        return f"{SUBNET}.{i + 1}"

    def launcher(self, i):
        return ["ip", "netns", "exec", self.hosts[i]]

    def link_bytes(self, i):
        """(received, sent) on host i's link, every byte of every frame."""
        stats = json.loads(run("ip", "-n", self.hosts[i], "-j", "-s", "link", "show", "dev", "eth0"))[0]["stats64"]
        return stats["rx"]["bytes"], stats["tx"]["bytes"]

    def trace(self, path, period=0.05):
        """Starts sampling every link's byte counters into `path` every `period` seconds; returns the sampler
        process (terminate it to stop). It runs in the switch's namespace, whose ends of the links see them all."""
        return subprocess.Popen(["ip", "netns", "exec", self.switch, sys.executable, "-c", LINK_SAMPLER,
                                 str(len(self.hosts)), str(period), path])

    def delete(self):
        for ns in [self.switch] + self.hosts:
            run("ip", "netns", "del", ns, check=False)



def cpu_times():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def busy_since(before):
    busy, total = cpu_times()
    return (busy - before[0]) / max(1, total - before[1])


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class Fleet:
    """equicastd on every host; host 0 is the origin the release is pushed to."""

    def __init__(self, net, agent, cli, pubkey, fleet_key, options=()):
        self.net, self.agent, self.cli, self.pubkey, self.fleet_key = net, agent, cli, pubkey, fleet_key
        self.options = [part for o in options for part in ("--" + o.partition("=")[0], o.partition("=")[2])]
        self.dir = tempfile.mkdtemp(prefix="fleet-", dir=SCRATCH)
        self.procs = {}

    def state(self, i):
        return os.path.join(self.dir, f"n{i}")

    def request(self, i, line):
        return control_request(os.path.join(self.state(i), "control.sock"), line)

    def status(self, i):
        out = {}
        for line in self.request(i, "status").splitlines():
            k, _, v = line.partition("\t")
            out[k] = v
        return out

    def start(self):
        for i in range(len(self.net.hosts)):
            os.makedirs(self.state(i))
            args = self.net.launcher(i) + [
                self.agent, "run", "--BindAddress", f"{Network.address(i)}:{PORT}", "--StateDirectory",
                self.state(i), "--FleetKeyFile", self.fleet_key, "--ReleasePublicKeyFile", self.pubkey, "--Product",
                PRODUCT, "--InstallCommand", f'cp "$EQUICAST_IMAGE" {self.state(i)}/installed.img',
                "--LogLevel", "warning"] + self.options
            if i:
                args += ["--Seeds", f"{Network.address(0)}:{PORT}"]
            log = open(os.path.join(self.dir, f"n{i}.log"), "w")
            self.procs[i] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            if i == 0 and wait_for(lambda: self.status(0).get("node"), 10) is None:
                raise RuntimeError("the origin's agent did not start")
        n = len(self.net.hosts)
        if wait_for(lambda: all(self.status(i).get("members_alive") == str(n) for i in range(n)), 60) is None:
            raise RuntimeError(f"the {n} agents did not all see each other within 60 s")

    def push(self, release):
        out = subprocess.run(
            self.net.launcher(0) + [self.cli, "rollout", "push", release, "--agent", f"{Network.address(0)}:{PORT}",
                                    "--fleet-key", self.fleet_key], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"rollout push failed: {out.stdout}{out.stderr}")

    def spread(self, release, version, timeout=300):
        """Pushes `release` to the origin; returns, per host 1..n, seconds from the push until it held every chunk
        verified and until it committed `version`. The agents report how long ago each happened, so polling every
        0.1 s is enough for times to the millisecond and costs the agents little; one thread per host, so an
        agent slow to answer does not delay the others' times."""
        hosts = range(1, len(self.net.hosts))
        verified, committed = {}, {}
        t0 = time.monotonic()

        def watch(i):
            while time.monotonic() - t0 < timeout:
                s = self.status(i)
                now = time.monotonic() - t0
                if str(version) == s.get("target_version") and s.get("chunks_complete_ms_ago", "never") != "never":
                    verified.setdefault(i, now - int(s["chunks_complete_ms_ago"]) / 1000)
                if s.get("firmware_version") == str(version) and s.get("update_state") == "committed":
                    committed[i] = now - int(s["update_state_ms_ago"]) / 1000
                    verified.setdefault(i, committed[i])
                    return
                time.sleep(0.1)

        watchers = [threading.Thread(target=watch, args=(i,)) for i in hosts]
        self.push(release)
        self.pushed = (t0, time.monotonic())
        for w in watchers:
            w.start()
        for w in watchers:
            w.join()
        if len(committed) < len(hosts):
            missing = [i for i in hosts if i not in committed]
            raise RuntimeError(f"hosts {missing} did not install version {version} within {timeout} s")
        return [verified[i] for i in hosts], [committed[i] for i in hosts]

    def stop(self):
        kill_all(self.procs)
        if os.environ.get("KEEP_LOGS"):
            d = os.path.join(os.environ["KEEP_LOGS"], str(int(time.time() * 1000)))
            shutil.copytree(self.dir, d, ignore=shutil.ignore_patterns("*.img", "chunks", "*.eqr", "*.sock", "image*"))
        shutil.rmtree(self.dir, ignore_errors=True)



def equicast_trial(net, args, keys, release, image):
    fleet = Fleet(net, args.agent, args.cli, *keys, options=args.agent_option)
    try:
        fleet.start()
        time.sleep(2)  # let join traffic settle
        sampler = None
        if args.trace:
            os.makedirs(args.trace, exist_ok=True)
            path = os.path.join(args.trace, f"links-n{len(net.hosts) - 1}-{time.strftime('%H%M%S')}.csv")
            sampler = net.trace(path)
            time.sleep(0.5)  # the sampler's first rows come before the push
        cpu = cpu_times()
        try:
            verified, committed = fleet.spread(release, 1)
        finally:
            if sampler:
                sampler.terminate()
                sampler.wait()
        busy = busy_since(cpu)
        if sampler:
            with open(path.replace(".csv", ".json"), "w") as f:  # on the sampler's clock (CLOCK_MONOTONIC)
                json.dump({"push_started": fleet.pushed[0], "push_returned": fleet.pushed[1],
                           "verified": [fleet.pushed[0] + t for t in verified],
                           "committed": [fleet.pushed[0] + t for t in committed]}, f)
        hosts = range(1, len(net.hosts))
        source = sha256(image)
        wrong = [i for i in hosts if sha256(os.path.join(fleet.state(i), "installed.img")) != source]
        if wrong:
            raise RuntimeError(f"hosts {wrong} installed an image that differs from the source")
        served = int(fleet.status(0)["bytes_served"])
        rss = [proc_status_kib(p.pid, "VmHWM") for p in fleet.procs.values()]
        # Requests that failed (timed out, connection closed, reply refused) and frames refused as replayed or
        # stale, over every agent: on these clean links both should be 0.
        statuses = [fleet.status(i) for i in range(len(net.hosts))]
        failed = sum(int(s["chunk_requests_failed"]) for s in statuses)
        replays = sum(int(s["replays_rejected"]) for s in statuses)
        return {"verified": verified, "committed": committed, "origin_served": served, "rss": rss, "busy": busy,
                "failed": failed, "replays": replays}
    finally:
        fleet.stop()


def nginx_trial(net, path):
    d = tempfile.mkdtemp(prefix="nginx-", dir=SCRATCH)
    os.chmod(d, 0o755)
    name = os.path.basename(path)
    shutil.copy(path, os.path.join(d, name))
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""user root;
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{ listen {Network.address(0)}:{HTTP_PORT}; root {d}; }}
}}
""")
    server = subprocess.Popen(net.launcher(0) + ["nginx", "-c", conf, "-p", d], stderr=subprocess.DEVNULL)
    try:
        url = f"http://{Network.address(0)}:{HTTP_PORT}/{name}"

        def up():
            return subprocess.run(net.launcher(1) + ["curl", "-sfI", url], capture_output=True).returncode == 0
        if wait_for(up, 10) is None:
            raise RuntimeError("nginx did not start")
        size = os.path.getsize(path)
        hosts = range(1, len(net.hosts))
        t0 = time.monotonic()
        cpu = cpu_times()
        clients = {i: subprocess.Popen(net.launcher(i) + ["curl", "-sf", "-o", os.path.join(d, f"got{i}"), url])
                   for i in hosts}
        done = {}
        while len(done) < len(clients):
            for i, c in clients.items():
                if i not in done and c.poll() is not None:
                    done[i] = time.monotonic() - t0
                    if c.returncode != 0 or os.path.getsize(os.path.join(d, f"got{i}")) != size:
                        raise RuntimeError(f"curl on host {i} failed ({c.returncode})")
            time.sleep(0.02)
        return {"committed": [done[i] for i in hosts], "busy": busy_since(cpu)}
    finally:
        server.send_signal(signal.SIGQUIT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(d, ignore_errors=True)


def update_trial(net, args, keys, v1, v2, image2):
    """v1 everywhere, then v2; per host, the bytes fetched and the link bytes received while v2 spread."""
    fleet = Fleet(net, args.agent, args.cli, *keys, options=args.agent_option)
    try:
        fleet.start()
        time.sleep(2)
        fleet.spread(v1, 1)
        time.sleep(2)  # v1's last chunk requests and status gossip settle
        hosts = range(1, len(net.hosts))
        before = {i: (int(fleet.status(i)["bytes_downloaded"]), net.link_bytes(i)[0]) for i in hosts}
        _, committed = fleet.spread(v2, 2)
        after = {i: (int(fleet.status(i)["bytes_downloaded"]), net.link_bytes(i)[0]) for i in hosts}
        source = sha256(image2)
        wrong = [i for i in hosts if sha256(os.path.join(fleet.state(i), "installed.img")) != source]
        if wrong:
            raise RuntimeError(f"hosts {wrong} installed a v2 image that differs from the source")
        return {"committed": committed,
                "fetched": [after[i][0] - before[i][0] for i in hosts],
                "link": [after[i][1] - before[i][1] for i in hosts]}
    finally:
        fleet.stop()


def spread(times):
    """First, median and last of per-host times."""
    t = sorted(times)
    return t[0], statistics.median(t), t[-1]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", required=True)
    p.add_argument("--cli", required=True)
    p.add_argument("--samples", required=True, help="firmware-samples/make-samples.sh output")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--rate", type=int, default=20, help="Mbit/s each way on every link")
    p.add_argument("--equicast-only", action="store_true", help="skip nginx and the update (while tuning)")
    p.add_argument("--agent-option", action="append", default=[], metavar="KEY=VALUE",
                   help="passed to every agent as --KEY VALUE (while tuning)")
    p.add_argument("--trace", metavar="DIR", help="write every link's byte counters, every 50 ms of each Equicast "
                   "trial, to a CSV in DIR (see bench/linktrace.py)")
    p.add_argument("sizes", type=int, nargs="+")
    args = p.parse_args()

    global SCRATCH
    work = tempfile.mkdtemp(prefix="bench-rollout-")
    SCRATCH = os.path.join(work, "scratch")
    os.makedirs(SCRATCH)
    run("mount", "-t", "tmpfs", "-o", "size=8g", "bench-rollout", SCRATCH)
    try:
        # Keys: a fleet key for this run; the committed sample release key signs every release.
        fleet_key = os.path.join(work, "fleet.key")
        run(args.cli, "keygen", "--fleet", "-o", fleet_key)
        release_key = os.path.join(work, "release.key")
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "firmware-samples")
        shutil.copy(os.path.join(here, "SAMPLE-release-key-NOT-SECRET"), release_key)
        os.chmod(release_key, 0o600)
        pubkey = os.path.join(here, "SAMPLE-release-key-NOT-SECRET.pub")
        keys = (pubkey, fleet_key)
        # The timed release: 16 MiB of pseudo-random bytes, which compression cannot shrink, so S / U holds for
        # every system. (The sample image compresses to two thirds; it is used for the update below.)
        image = os.path.join(work, "random-16m.img")
        with open(image, "wb") as f:
            f.write(random.Random(1).randbytes(16 << 20))
        release = os.path.join(work, "random-16m.eqr")
        run(args.cli, "release", "build", image, "--version", "1", "--product", PRODUCT, "--key", release_key,
            "-o", release)

        size = os.path.getsize(image)
        carried = os.path.getsize(release)
        rate = args.rate * 1e6
        bound = size * 8 / rate
        nginx_version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
        print(f"rollout: Equicast ({os.path.basename(args.agent)}, Embedded x86_64 build) vs "
              f"{nginx_version.split(': ')[-1]} + curl, {args.rate} Mbit/s each way on every link (tc tbf), "
              f"{os.cpu_count()} cores")
        print(f"release: {size} bytes of pseudo-random image, {carried} bytes as a release file (chunks and "
              f"manifest); both systems carry the release file")
        print(f"lower bound S / U = {bound:.2f} s for the image, {carried * 8 / rate:.2f} s for the release file")
        print(f"times: from the push (Equicast) or the first request (nginx) until each host has it; median of "
              f"{args.trials} trials of the last host's time (min-max), and the median trial's first, median and "
              f"last host")
        for n in args.sizes:
            net = Network(n, args.rate)
            try:
                results = {"equicast": [], "nginx": []}
                for t in range(args.trials):
                    order = ["equicast", "nginx"] if t % 2 == 0 else ["nginx", "equicast"]
                    if args.equicast_only:
                        order = ["equicast"]
                    for system in order:
                        if system == "equicast":
                            results[system].append(equicast_trial(net, args, keys, release, image))
                        else:
                            results[system].append(nginx_trial(net, release))
            finally:
                net.delete()
            print(f"\nN = {n} hosts plus the origin")
            print(f"{'':30}{'last host':>22}{'x bound':>9}{'first':>9}{'median':>9}{'last':>9}")
            lasts = {}
            for label, system, key in (("Equicast: all chunks verified", "equicast", "verified"),
                                       ("Equicast: installed", "equicast", "committed"),
                                       ("nginx + curl: downloaded", "nginx", "committed")):
                if not results[system]:
                    continue
                runs = sorted(results[system], key=lambda r: max(r[key]))
                last = [max(r[key]) for r in runs]
                first, med, lst = spread(runs[len(runs) // 2][key])
                lasts[label] = statistics.median(last)
                print(f"{label:30}{f'{statistics.median(last):.2f} s ({last[0]:.2f}-{last[-1]:.2f})':>22}"
                      f"{statistics.median(last) / bound:>8.2f}x{first:>8.2f}s{med:>8.2f}s{lst:>8.2f}s")
            if results["nginx"]:
                ratio = lasts["nginx + curl: downloaded"] / lasts["Equicast: installed"]
                print(f"nginx / Equicast (installed): {ratio:.1f}x")
            copies = [r["origin_served"] / carried for r in results["equicast"]]
            rss = [k for r in results["equicast"] for k in r["rss"]]
            busy = {k: statistics.median(r["busy"] for r in v) for k, v in results.items() if v}
            print("machine CPU busy while it ran (median of trials): " +
                  ", ".join(f"{k} {100 * b:.0f}%" for k, b in busy.items()))
            print(f"origin uploaded {statistics.median(copies):.2f} copies of the release file (median of trials); "
                  f"peak RSS per agent: median {statistics.median(rss) / 1024:.1f} MiB, "
                  f"max {max(rss) / 1024:.1f} MiB")
            print("requests that failed, all agents, per trial: " +
                  ", ".join(str(r["failed"]) for r in results["equicast"]) +
                  "; frames refused as replayed or stale: " +
                  ", ".join(str(r["replays"]) for r in results["equicast"]))
            sys.stdout.flush()

        if args.equicast_only:
            return
        n = max(args.sizes)
        v1, v2 = (os.path.join(args.samples, f"sample-16m-v{v}.eqr") for v in (1, 2))
        image2 = os.path.join(args.samples, "sample-16m-v2.img")
        image_size = os.path.getsize(image2)
        net = Network(n, args.rate)
        try:
            r = update_trial(net, args, keys, v1, v2, image2)
        finally:
            net.delete()
        fetched, link = r["fetched"], r["link"]
        print(f"\nv1 -> v2 update of the 16 MiB sample (about 1% of the bytes changed), N = {n}: installed on all "
              f"in {max(r['committed']):.2f} s")
        print(f"per host, of the {image_size}-byte v2 image: fetched (chunk payloads) median "
              f"{int(statistics.median(fetched))} bytes ({100 * statistics.median(fetched) / image_size:.2f}%), max "
              f"{max(fetched)} ({100 * max(fetched) / image_size:.2f}%); received on the link, everything "
              f"included, median {int(statistics.median(link))} bytes ({100 * statistics.median(link) / image_size:.2f}%)"
              f", max {max(link)} ({100 * max(link) / image_size:.2f}%)")
    finally:
        run("umount", SCRATCH, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
