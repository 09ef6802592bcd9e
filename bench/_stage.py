"""Run one ``rait`` CLI invocation in this (fresh) process and print its wall time and peak RSS as JSON.

Used by :mod:`bench.stages` so that every stage's peak memory is its own (``ru_maxrss`` is per process).

    python bench/_stage.py probe --data ... --out ...
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main(argv: list[str]) -> int:
    import rait
    from rait.cli import main as cli_main

    t = time.perf_counter()
    rc = cli_main(argv)
    seconds = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print("STAGE_RESULT " + json.dumps({"rc": rc, "seconds": round(seconds, 2), "peak_rss_mb": round(rss_mb),
                                              "rait": rait.__file__}),
          flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
