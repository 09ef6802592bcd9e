"""Artifact kinds for methods that decide at test time: ``test_tables`` and ``hidden_states``.

* ``test_tables`` — M0's knowledge table of every **test** set (``probe/tests/<test>/table.jsonl``), probed with
  the run's probe settings: what ``abstain_consistency`` needs to score a test question by sample agreement.
* ``hidden_states`` — M0's hidden states of the pool and of every test set (``hidden/<set>.npy``, ``[n, layers
  + 1, d]`` float16, with ``<set>.ids.json``): the last prompt token of the 0-shot evaluation prompt.

Both register with :mod:`rait.run.providers` when this module is imported (the methods that need them import it).

Example:
    >>> import rait.run.providers_eval
    >>> from rait.run.providers import KINDS
    >>> KINDS.get("hidden_states").stage, KINDS.get("test_tables").out(__import__("pathlib").Path("r"))
    ('hidden', PosixPath('r/probe/tests'))
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rait.errors import RaitError
from rait.run.providers import KINDS, Provider, provide

if TYPE_CHECKING:
    from rait.run.pipeline import Plan, Stage


def test_table_path(root: Path, test: str) -> Path:
    """The knowledge table of test set ``test`` under the ``test_tables`` directory."""
    return root / test / "table.jsonl"


def load_states(root: Path, name: str) -> tuple[list[str], np.ndarray]:
    """``(ids, states)`` of one set (``pool``, ``id``, ``ood``) under the ``hidden_states`` directory."""
    ids_path, arr_path = root / f"{name}.ids.json", root / f"{name}.npy"
    if not ids_path.exists() or not arr_path.exists():
        raise RaitError(f"{arr_path}: hidden states of {name!r} not found; run the 'hidden' stage (rait run)")
    return json.loads(ids_path.read_text()), np.load(arr_path).astype(np.float32)


def pool_probe(table: list[dict[str, Any]], hidden_dir: str | Path, folds: int, seed: int) -> dict[str, Any]:
    """The hidden-state probe of M0's correctness fit on the pool (:func:`rait.core.hidden.fit_probe`): ``probe``
    (layer, CV AUROC per layer, cross-fitted ``pool_scores`` in table order), the pool ``verdicts`` and their
    ``source`` (greedy or sample majority). A pool id without a hidden state is a DataError naming it."""
    from rait.core.abstain import pool_verdicts
    from rait.core.hidden import fit_probe
    from rait.errors import DataError

    verdicts, source = pool_verdicts(table)
    ids, states = load_states(Path(hidden_dir), "pool")
    at = {i: n for n, i in enumerate(ids)}
    missing = [r["id"] for r in table if r["id"] not in at]
    if missing:
        raise DataError(str(hidden_dir), None, f"no hidden state for {len(missing)} pool id(s), e.g. {missing[0]!r}")
    X = states[[at[r["id"]] for r in table]]
    probe = fit_probe(X, [v == "correct" for v in verdicts], folds=folds, seed=seed)
    return {"probe": probe, "verdicts": verdicts, "source": source}


@dataclass
class HiddenConfig:
    """Settings of the hidden-states stage."""

    model: str
    dtype: str
    out: str
    sets: dict[str, str] = field(default_factory=dict)  # set name -> JSONL of items
    eval: Any = None  # rait.stages.evaluate.EvalConfig: the prompt whose last token is read
    batch_size: int = 16


def hidden_stage(cfg: HiddenConfig) -> None:
    """Write ``<set>.npy`` / ``<set>.ids.json`` for every set (one forward pass per question)."""
    from rait.core.artifacts import atomic_write_text, file_info, write_manifest
    from rait.core.hidden import question_states
    from rait.core.models import load_model
    from rait.data import load
    from rait.stages.evaluate import EvalConfig, eval_prompt

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model, tok = load_model(cfg.model, dtype=cfg.dtype)
    ecfg = replace(cfg.eval if cfg.eval is not None else EvalConfig(), prompt="basic")
    t0, counts = time.time(), {}
    for name, path in sorted(cfg.sets.items()):
        items = load(f"jsonl:{path}")
        states = question_states(model, tok, [eval_prompt(it, tok, ecfg) for it in items], cfg.batch_size)
        tmp = out / f".{name}.npy.tmp"
        with open(tmp, "wb") as fh:
            np.save(fh, states.astype(np.float16))
        tmp.replace(out / f"{name}.npy")
        atomic_write_text(out / f"{name}.ids.json", json.dumps([it.id for it in items]) + "\n")
        counts[name] = len(items)
    write_manifest(out, "hidden", {"model": cfg.model, "dtype": cfg.dtype, "sets": cfg.sets},
                   {name: file_info(path) for name, path in cfg.sets.items()}, {"forward": round(time.time() - t0, 2)},
                   outputs={"items": counts})


def _make_tests(plan: "Plan") -> "Stage":
    from rait.run.pipeline import Stage
    from rait.stages.probe import probe

    p = KINDS.get("test_tables")
    base = plan.cfg.stage("probe")
    cfgs = {t: replace(base, model=plan.cfg.model, dtype=plan.cfg.dtype, data=f"jsonl:{path}",
                       out=str(test_table_path(p.out(plan.root), t).parent)) for t, path in plan.tests().items()}
    return Stage(p.stage, p.out(plan.root), {t: asdict(c) for t, c in cfgs.items()},
                 lambda: [probe(c) for c in cfgs.values()], deps=["data"])


def _make_hidden(plan: "Plan") -> "Stage":
    from rait.run.pipeline import Stage

    p = KINDS.get("hidden_states")
    sets = {"pool": str(plan.pool), **{t: str(path) for t, path in plan.tests().items()}}
    cfg = HiddenConfig(model=plan.cfg.model, dtype=plan.cfg.dtype, out=str(p.out(plan.root)), sets=sets,
                       eval=plan.cfg.stage("eval"))
    return Stage(p.stage, p.out(plan.root), cfg, lambda: hidden_stage(cfg), deps=["data"])


provide(Provider("test_tables", "probe_tests", (), lambda r: r / "probe" / "tests", lambda r: r / "probe" / "tests",
                 _make_tests))
provide(Provider("hidden_states", "hidden", (), lambda r: r / "hidden", lambda r: r / "hidden", _make_hidden,
                 build_field="hidden_dir"))
