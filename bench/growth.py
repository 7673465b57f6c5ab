#!/usr/bin/env python3
"""What grows faster than N: the CPU samples of a `lab run` by windows of its ramp, per
connection established in each window (bench/growth.sh records them).

Usage: growth.py SAMPLES.tsv ESTABLISHED.csv RAMP_START PIDS [WINDOW_S]
  SAMPLES.tsv      comm, pid, time (s, perf's clock), symbol per sample (`perf script`)
  ESTABLISHED.csv  `lab run --out`'s series (t_ms since the clients started, ..., total)
  RAMP_START       perf time of the clients' start (the first connect)
  PIDS             file of the run's pids (lab run and its agents), one per line
Samples of other processes are left out, except the kernel's own threads (softirq, workqueues),
which do the lab's work too; those are counted apart ("kernel threads") because they also do
other namespaces' work (a namespace removed anywhere walks the whole conntrack table).
"""
import bisect
import collections
import csv
import sys

samples, series, start, pids_file = sys.argv[1:5]
window = float(sys.argv[5]) if len(sys.argv) > 5 else 10.0
start = float(start)
pids = {line.strip() for line in open(pids_file) if line.strip()}
rows = [(int(r["t_ms"]) / 1000, int(r["total"])) for r in csv.DictReader(open(series))]
times = [t for t, _ in rows]


def established(t):
    i = bisect.bisect_right(times, t) - 1
    return rows[i][1] if i >= 0 else 0


final = rows[-1][1]
end = min(t for t, n in rows if n >= final)  # the ramp's end: the last count first reached
n_windows = int(end // window) + 1
ours = [collections.Counter() for _ in range(n_windows)]
kthreads = [0] * n_windows
KTHREADS = ("ksoftirqd", "kworker", "kthreadd", "rcu")
for line in open(samples):
    comm, pid, t, sym = line.rstrip("\n").split("\t")
    w = float(t) - start
    if w < 0 or w >= end:
        continue
    w = int(w // window)
    if pid in pids:
        ours[w][sym] += 1
    elif comm.startswith(KTHREADS):
        ours[w][sym] += 1
        kthreads[w] += 1

print(f"{'window':>8} {'connections':>11} {'samples':>8} {'per 1k':>7} {'kthreads':>8}")
for w in range(n_windows):
    n = established(min((w + 1) * window, end)) - established(w * window)
    total = sum(ours[w].values())
    print(f"{w * window:7.0f}s {n:11d} {total:8d} {1000 * total / max(n, 1):7.1f} {kthreads[w]:8d}")


def per(ws):
    c = collections.Counter()
    n = 0
    for w in ws:
        c.update(ours[w])
        n += established(min((w + 1) * window, end)) - established(w * window)
    return c, max(n, 1)


if n_windows >= 4:
    early, n_early = per([0, 1])
    late, n_late = per([n_windows - 2, n_windows - 1])
    print(f"\nsamples per 1,000 connections: first two windows ({n_early} connections) "
          f"against the last two ({n_late})")
    grown = sorted(set(early) | set(late),
                   key=lambda s: -(late[s] / n_late - early[s] / n_early))
    print(f"{'symbol':44} {'early':>7} {'late':>7} {'growth':>7}")
    for s in grown[:30]:
        a, b = 1000 * early[s] / n_early, 1000 * late[s] / n_late
        print(f"{s[:44]:44} {a:7.2f} {b:7.2f} {b - a:+7.2f}")
