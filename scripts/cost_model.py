#!/usr/bin/env python3
"""Data-parallel cost model for 1 to 64 nodes (docs/distributed.md).

Reads bench_distributed's JSON from one process (its dp_step times: forward, backward and
AdamW of one node's batch; its allreduce counters: each model's gradient store in MB) and
prints, for 10 and 100 Gb/s networks, the step time and the scaling efficiency of R nodes
(one process per node, the node's batch fixed, the global batch R times it):

    allreduce(R) = 2 (R - 1) / R * bytes / bandwidth + 2 (R - 1) * latency      (a ring)
    step(R)      = compute + allreduce(R)             (no overlap)
                   max(compute, allreduce(R))         (perfect overlap with backward)
    efficiency   = compute / step(R)

and the gradient accumulation (k micro-batches per allreduce, compute k times) that keeps
the efficiency at 90% without overlap.

  usage: mpirun --allow-run-as-root -np 1 --bind-to none -x OMP_NUM_THREADS=2 \\
             build/release/benchmarks/bench_distributed --benchmark_format=json > dp.json
         python3 scripts/cost_model.py dp.json
"""
import json
import math
import sys

LATENCY_S = 5e-6  # per ring step, an Ethernet-class figure; small against the bandwidth term here
NODES = [1, 2, 4, 8, 16, 32, 64]
NETWORKS = {"10 Gb/s": 10e9 / 8, "100 Gb/s": 100e9 / 8}  # bytes per second


def allreduce_s(nodes, nbytes, bandwidth):
    if nodes == 1:
        return 0.0
    return 2 * (nodes - 1) / nodes * nbytes / bandwidth + 2 * (nodes - 1) * LATENCY_S


def main(path):
    with open(path) as f:
        runs = json.load(f)["benchmarks"]
    compute, nbytes, batch = {}, {}, {}
    for r in runs:
        kind, _, rest = r["name"].partition("/")
        model = rest.split("/")[0]
        if kind == "dp_step":
            compute[model] = r["real_time"] / 1e3  # ms -> s
            batch[model] = int(rest.split("/")[1]) if "/" in rest else 0
        elif kind == "allreduce":
            nbytes[model] = r["MB"] * 1e6
    models = [m for m in compute if m in nbytes]
    if not models:
        sys.exit(f"{path}: no dp_step and allreduce results of the same model")
    for net, bw in NETWORKS.items():
        print(f"\n### {net} (ring allreduce, {LATENCY_S * 1e6:.0f} us per ring step)\n")
        print("| model (batch per node) | compute | gradients | " +
              " | ".join(f"{n} nodes" for n in NODES) + " | accumulation for 90% at 64 nodes |")
        print("|---|---|---|" + "---|" * len(NODES) + "---|")
        for m in models:
            c, b = compute[m], nbytes[m]
            cells = []
            for n in NODES:
                a = allreduce_s(n, b, bw)
                eff, eff_overlap = c / (c + a), c / max(c, a)
                cells.append(f"{eff:.0%} / {eff_overlap:.0%}")
            a64 = allreduce_s(64, b, bw)
            k = max(1, math.ceil(9 * a64 / c))  # k c / (k c + a) >= 0.9
            print(f"| {m} ({batch[m]}) | {c * 1e3:.0f} ms | {b / 1e6:.0f} MB | " + " | ".join(cells) +
                  f" | {k} |")
    print("\ncells: scaling efficiency without overlap / with perfect overlap "
          "(speedup over one node = nodes x efficiency)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
