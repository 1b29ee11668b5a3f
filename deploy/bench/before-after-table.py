#!/usr/bin/env python3
"""The Markdown table for docs/benchmarks.md from before-after.sh's JSON lines (stdin).

One row per run and build: ops/s of every round, then the medians of ops/s, p50 and p99
over the rounds, and for the `after` row the ratio of the two medians of ops/s (after
over before: above 1 is faster). Medians, not means, because one disturbed round on a
shared 2-core machine should not move the figure.
"""

import json
import statistics
import sys
from collections import defaultdict


def run_name(line):
    # Older runs of before-after.sh let the bench's own "bench" field ("kv get")
    # replace the run name; the parameters still tell the runs apart.
    name = line["bench"]
    if " " not in name:
        return name
    params = line.get("params", {})
    kind, op = name.split()[:2]
    parts = [kind, op, str(params.get("concurrency", "?"))]
    if "objects" in params:
        parts.append(f"x{params['objects']}")
    return "-".join(parts)


def main():
    runs = defaultdict(lambda: defaultdict(list))
    order = []
    for text in sys.stdin:
        if not text.strip():
            continue
        line = json.loads(text)
        name = run_name(line)
        if name not in order:
            order.append(name)
        runs[name][line["build"]].append(line)

    print("| run | build | ops/s per round | median ops/s | median p50 ms | median p99 ms | after/before |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name in order:
        medians = {}
        for build in ("before", "after"):
            lines = sorted(runs[name][build], key=lambda l: l["round"])
            if not lines:
                continue
            ops = [l["ops_per_sec"] for l in lines]
            medians[build] = statistics.median(ops)
            ratio = ""
            if build == "after" and "before" in medians:
                ratio = f"{medians['after'] / medians['before']:.2f}"
            print(
                f"| {name} | {build} | {', '.join(f'{o:,.0f}' for o in ops)} "
                f"| {medians[build]:,.0f} "
                f"| {statistics.median(l['p50_ms'] for l in lines):.3f} "
                f"| {statistics.median(l['p99_ms'] for l in lines):.3f} | {ratio} |"
            )


if __name__ == "__main__":
    main()
