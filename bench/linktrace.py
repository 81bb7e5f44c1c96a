#!/usr/bin/env python3
"""Reads a trace written by `bench/rollout.py --trace DIR` and prints where the time of one Equicast trial went.

A trace is a CSV (the machine's CPU jiffies and every link's byte counters, sampled every 50 ms) and a JSON of the
push and of each host's verified and installed times, all on CLOCK_MONOTONIC. Printed:
- a timeline from the push, one row per BUCKET seconds: machine CPU busy, the origin's upload rate, and the
  hosts' download and upload rates (minimum, median, maximum), in Mbit/s;
- per host: when its link had received 50%, 90%, 99% and 99.9% of the bytes it received in the trial, against
  when its agent reported every chunk verified and the image installed.

Usage: bench/linktrace.py TRACE.csv [BUCKET]
"""
import csv
import json
import statistics
import sys


def main():
    path = sys.argv[1]
    bucket = float(sys.argv[2]) if len(sys.argv) > 2 else 0.25
    with open(path) as f:
        rows = list(csv.reader(f))
    with open(path[:-len(".csv")] + ".json") as f:
        events = json.load(f)
    header, data = rows[0], [[float(x) for x in r] for r in rows[1:]]
    hosts = (len(header) - 3) // 2  # t, cpu_busy, cpu_total, then sent and received per host
    sent = lambda r, i: r[3 + 2 * i]
    received = lambda r, i: r[4 + 2 * i]
    t0 = events["push_started"]
    print(f"push returned after {events['push_returned'] - t0:.2f} s")
    print(f"{'t (s)':>6} {'cpu':>5} {'origin up':>10} {'hosts down min/med/max':>24} {'hosts up min/med/max':>22}")
    prev = None
    for r in data:
        if r[0] < t0:
            prev = r
            continue
        if prev is None or r[0] - prev[0] < bucket - 1e-9:
            prev = prev or r
            continue
        dt = r[0] - prev[0]
        rate = lambda f, i: (f(r, i) - f(prev, i)) * 8 / dt / 1e6
        busy = (r[1] - prev[1]) / max(1, r[2] - prev[2])
        down = sorted(rate(received, i) for i in range(1, hosts))
        up = sorted(rate(sent, i) for i in range(1, hosts))
        print(f"{r[0] - t0:6.2f} {100 * busy:4.0f}% {rate(sent, 0):10.1f} "
              f"{down[0]:8.1f}{statistics.median(down):8.1f}{down[-1]:8.1f} "
              f"{up[0]:7.1f}{statistics.median(up):7.1f}{up[-1]:7.1f}")
        prev = r
        if all(v < 0.5 for v in down) and r[0] - t0 > max(events["committed"]) - t0:
            break
    print(f"\n{'host':>4} {'received 50%':>13} {'90%':>6} {'99%':>6} {'99.9%':>6} {'verified':>9} {'installed':>10}")
    first = data[0]
    for i in range(1, hosts):
        total = received(data[-1], i) - received(first, i)
        marks = [next(r[0] for r in data if received(r, i) - received(first, i) >= frac * total) - t0
                 for frac in (0.5, 0.9, 0.99, 0.999)]
        print(f"{i:4} {marks[0]:13.2f} {marks[1]:6.2f} {marks[2]:6.2f} {marks[3]:6.2f} "
              f"{events['verified'][i - 1] - t0:9.2f} {events['committed'][i - 1] - t0:10.2f}")


if __name__ == "__main__":
    main()
