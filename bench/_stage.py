"""Run one stage of a ``rait run`` plan in this (fresh) process and print its wall time and peak RSS as JSON.

Used by :mod:`bench.stages` so that every stage's peak memory is its own (``ru_maxrss`` is per process; the stage
runs in this process, not in a worker of its own as ``rait run`` would start one). The plan
is built by the ``rait`` package first on ``sys.path`` — the current code, or the baseline revision's exported
package ("today"), whose plans ran a stage as a ``rait`` CLI invocation (``Stage.argv``) instead of an
in-process call.

    python bench/_stage.py --list CONFIG STAGE[,STAGE...] [KEY=VALUE ...]   # stages to run, with their deps
    python bench/_stage.py CONFIG STAGE [KEY=VALUE ...]                     # run one stage; STAGE_RESULT {...}
"""

from __future__ import annotations

import json
import resource
import sys
import time


def plan_of(config: str, sets: list[str]):
    """The run's plan, built by whichever ``rait`` is imported (current layout or the pre-layout one)."""
    try:
        from rait.core.config import load_yaml
        from rait.run.pipeline import Plan, RunConfig
    except ImportError:  # the code before the rait/core, rait/run layout (the "today" baseline)
        from rait.config import load_yaml
        from rait.pipeline import Plan, RunConfig
    return Plan(load_yaml(RunConfig, _known_keys(config, RunConfig), sets))


#: run-config keys that only say how stages are scheduled (no stage's work): dropped for a version without them
SCHEDULING = ("isolate", "jobs")


def _known_keys(config: str, run_config: type) -> str:
    """``config``, or a copy without the scheduling keys that this version's RunConfig does not have (the baseline
    revision predates ``jobs``)."""
    import dataclasses
    import hashlib
    import tempfile
    from pathlib import Path

    import yaml

    data = yaml.safe_load(Path(config).read_text())
    fields = {f.name for f in dataclasses.fields(run_config)}
    extra = [k for k in SCHEDULING if k in data and k not in fields]
    if not extra:
        return config
    for k in extra:
        del data[k]
    text = yaml.safe_dump(data)  # one file per content, rewritten by every stage of a benchmark: none piles up
    out = Path(tempfile.gettempdir()) / f"rait-bench-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    out.write_text(text)
    return str(out)


def needed(plan, wanted: list[str]) -> list[str]:
    """Stage names to run, in plan order: the wanted ones and their dependencies."""
    todo, stack = set(), list(wanted)
    while stack:
        name = stack.pop()
        if name not in todo:
            todo.add(name)
            stack.extend(plan.stages[name].deps)
    return [s for s in plan.stages if s in todo]


def run_one(plan, name: str) -> int:
    """Run stage ``name`` of ``plan`` as ``rait run`` would (its dependencies must be done)."""
    st = plan.stages[name]
    if getattr(st, "run", None):  # pre-layout in-process stages (data, aggregate)
        st.run()
        return 0
    if getattr(st, "argv", None):  # pre-layout plans: any other stage is a CLI invocation
        from rait.cli import main as cli_main

        return cli_main(st.argv)
    from rait.run.pipeline import execute

    plan.stages = {name: st}
    if getattr(plan.cfg, "isolate", False):  # this process is the stage's own: no worker, so its peak RSS is ours
        plan.cfg.isolate = False
    execute(plan, log=lambda _: None)
    return 0


def main(argv: list[str]) -> int:
    if argv[0] == "--list":
        print("STAGES " + json.dumps(needed(plan_of(argv[1], argv[3:]), argv[2].split(","))), flush=True)
        return 0
    import rait

    plan = plan_of(argv[0], argv[2:])
    t = time.perf_counter()
    rc = run_one(plan, argv[1])
    seconds = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print("STAGE_RESULT " + json.dumps({"rc": rc, "seconds": round(seconds, 2), "peak_rss_mb": round(rss_mb),
                                        "out": str(plan.stages[argv[1]].out) if argv[1] in plan.stages else None,
                                        "rait": rait.__file__}), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
