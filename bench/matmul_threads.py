"""fp32 ``linear`` throughput by row count (M) and torch thread count, each thread count in its own process.

Decoding multiplies few rows (M = live sequences) by each weight matrix; on a CPU shared with other busy
processes, OpenMP threads wait for each other at every barrier, which costs little on one big matmul and a lot
on many small ones. Prints GFLOP/s of an (M x 576) @ (576 x 1536) product (a SmolLM2-135M MLP projection).

    python bench/matmul_threads.py [--threads 1,2] [--reps 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROWS = (8, 64, 192, 1728)


def child() -> None:
    import torch

    w = torch.randn(1536, 576)
    out = []
    for m in ROWS:
        x = torch.randn(m, 576)
        torch.nn.functional.linear(x, w)
        t = time.perf_counter()
        for _ in range(10):
            torch.nn.functional.linear(x, w)
        out.append(2 * m * 576 * 1536 * 10 / (time.perf_counter() - t) / 1e9)
    print(" ".join(f"{g:.1f}" for g in out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import cpu_line

    print(cpu_line().split(", torch")[0], "| GFLOP/s of fp32 linear, M rows x 576 -> 1536")
    print("threads | " + " | ".join(f"M={m}" for m in ROWS))
    for _ in range(args.reps):  # interleaved repeats
        for n in args.threads.split(","):
            env = {**os.environ, "OMP_NUM_THREADS": n}
            r = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True)
            print(f"{n} | " + " | ".join(r.stdout.split()))
    return 0


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        sys.exit(main())
