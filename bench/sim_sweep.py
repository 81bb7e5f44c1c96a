#!/usr/bin/env python3
"""Runs one simulator scenario over many seeds with one or more builds, and prints the distribution of what each
run measured (rounds to full view, detection, healing, rollout times, traffic) per build, side by side, with the
runs that differ between builds counted. For showing that a change that reorders events (and so the random draws)
keeps behaviour the same within noise.

Usage: bench/sim_sweep.py SCENARIO N SEEDS LABEL=SIMULATOR [LABEL=SIMULATOR ...] [-- EXTRA SIM ARGS]
  e.g. bench/sim_sweep.py rollout 1000 1-20 before=/tmp/a after=.build/release/equicast -- --release-kib 1024
"""
import re
import statistics
import subprocess
import sys

PATTERNS = {
    "join_rounds": r"full view at [0-9.]+ s \(([0-9.]+) gossip rounds",
    "detect_s": r"marked all of them failed at [0-9.]+ s, ([0-9.]+) s after the crash",
    "heal_s": r"agreed again at [0-9.]+ s, ([0-9.]+) s after healing",
    "converged_s": r"liveness: faults stopped at [0-9.]+ s; converged at ([0-9.]+) s",
    "verified50_s": r"50% at ([0-9.]+) s",
    "verified90_s": r"90% at ([0-9.]+) s",
    "verified100_s": r"100% at ([0-9.]+) s",
    "origin_copies": r"the origin uploaded ([0-9.]+) copies",
    "bytes_node_round": r"datagrams and ([0-9.]+) bytes per node per round",
    "syncs": r"lost; ([0-9]+) syncs",
}


def seeds(spec):
    out = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def run(sim, scenario, n, seed, extra):
    p = subprocess.run([sim, "sim", scenario, "-n", str(n), "--seed", str(seed)] + extra,
                       capture_output=True, text=True)
    text = p.stdout + p.stderr
    m = {k: float(x.group(1)) for k, pat in PATTERNS.items() if (x := re.search(pat, text))}
    m["result"] = (re.search(r"^result: (.*)$", text, re.M) or [None, "none"])[1]
    kept = "\n".join(l for l in text.splitlines() if not l.startswith("simulation:"))
    return m, kept


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        extra = args[args.index("--") + 1:]
        args = args[:args.index("--")]
    scenario, n, spec = args[0], int(args[1]), args[2]
    builds = [a.split("=", 1) for a in args[3:]]
    results = {label: [] for label, _ in builds}
    differing = 0
    for seed in seeds(spec):
        texts = []
        for label, sim in builds:
            m, kept = run(sim, scenario, n, seed, extra)
            results[label].append(m)
            texts.append(kept)
        if len(set(texts)) > 1:
            differing += 1
        line = "  ".join(f"{label}: " + " ".join(f"{k}={v}" for k, v in results[label][-1].items())
                         for label, _ in builds)
        print(f"seed {seed}: {line}", flush=True)
    print(f"\n{scenario}, N = {n}, seeds {spec}, {' '.join(extra)}: "
          f"{differing} of {len(seeds(spec))} runs print differently between builds")
    keys = [k for k in PATTERNS if any(k in m for ms in results.values() for m in ms)]
    header = f"{'':18}" + "".join(f"{label + ' median':>16}{label + ' mean':>14}{'sd':>9}" for label, _ in builds)
    print(header)
    for k in keys:
        row = f"{k:18}"
        for label, _ in builds:
            xs = [m[k] for m in results[label] if k in m]
            sd = statistics.stdev(xs) if len(xs) > 1 else 0
            row += f"{statistics.median(xs):16.3f}{statistics.mean(xs):14.3f}{sd:9.3f}" if xs else f"{'-':>39}"
        print(row)
    for label, _ in builds:
        passed = sum(1 for m in results[label] if m["result"] == "passed")
        print(f"{label}: {passed} of {len(results[label])} passed")


if __name__ == "__main__":
    main()
