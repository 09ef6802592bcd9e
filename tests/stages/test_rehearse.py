"""``rait rehearse``: CRaFT mastery selection, seeded draw, fallback, training into OUT/model, Adam moments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from rait.errors import RaitError
from rait.stages.rehearse import RehearseConfig, rehearse, select, training_row
from rait.stages.train import TrainConfig


def table_rows():
    rows = []
    for i in range(30):
        rows.append({"id": f"o{i}", "kind": "oeqa", "question": f"What is {i} plus {i}?", "answers": [str(2 * i)],
                     "correctness": 1.0 if i % 2 == 0 else 0.6, "correctness_raw": 1.0 if i % 2 == 0 else 0.6,
                     "certainty": 1.0 if i % 3 else 0.99})
    for i in range(10):
        rows.append({"id": f"m{i}", "kind": "mcqa", "question": f"Pick {i}", "choices": ["a", "b", "c", "d"],
                     "gold": "ABCD"[i % 4], "correctness": 0.9, "correctness_raw": 0.995 if i < 4 else 0.5,
                     "certainty": -0.1})
    return rows


def write_table(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_select_rules_and_seed():
    rows = table_rows()
    picked, info = select(rows, RehearseConfig(min_items=1))
    ids = {r["id"] for r in picked}
    # OEQA: even i (all correct) and certainty 1.0 (i % 3 != 0); MCQA: raw > 0.99
    want = {f"o{i}" for i in range(30) if i % 2 == 0 and i % 3} | {f"m{i}" for i in range(4)}
    assert ids == want and info["qualified"] == len(want) and not info["fallback_used"]
    assert info["qualified_by_kind"] == {"oeqa": 10, "mcqa": 4}
    a, _ = select(rows, RehearseConfig(min_items=1, n=5, seed=3))
    b, _ = select(rows, RehearseConfig(min_items=1, n=5, seed=3))
    c, _ = select(rows, RehearseConfig(min_items=1, n=5, seed=4))
    assert [r["id"] for r in a] == [r["id"] for r in b] != [r["id"] for r in c]
    assert len(a) == 5


def test_min_items_error_and_fallback():
    rows = table_rows()
    with pytest.raises(RaitError, match="fallback=top_k"):
        select(rows, RehearseConfig(min_items=100))
    picked, info = select(rows, RehearseConfig(min_items=100, fallback="top_k", n=20))
    assert info["fallback_used"] and len(picked) == 20 and "top 20" in info["note"]
    assert picked[0]["correctness"] == 1.0


def test_training_row_basic_prompt():
    oe = training_row(table_rows()[0])
    assert oe["messages"] == [{"role": "system", "content": ""}, {"role": "user", "content": "What is 0 plus 0?"},
                              {"role": "assistant", "content": "0"}]
    mc = training_row(table_rows()[30])
    assert mc["messages"][-1]["content"] == "A" and "replying A, B, C or D" in mc["messages"][1]["content"]


def test_rehearse_trains_and_keeps_moments(tmp_path, tiny_model_dir):
    table = write_table(tmp_path / "table.jsonl", table_rows())
    cfg = RehearseConfig(table=str(table), model=str(tiny_model_dir), out=str(tmp_path / "r"), min_items=5,
                         save_optimizer=True, train=TrainConfig(epochs=1, batch_size=4, grad_accum=1,
                                                                precision="fp32"))
    final = rehearse(cfg)
    out = Path(cfg.out)
    assert final == out / "model" and (final / "model.safetensors").exists()
    assert (final / "adapter" / "adapter_config.json").exists()
    assert len((out / "rehearsal.jsonl").read_text().splitlines()) == 14
    man = json.loads((out / "manifest.json").read_text())
    assert man["outputs"]["selection"]["selected"] == 14 and len(man["inputs"]["table"]["sha256"]) == 64
    with safe_open(str(final / "optimizer.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert f.metadata()["format"] == "rait-adam-moments-v1" and int(f.metadata()["step"]) == 4
    assert any(k.endswith(".exp_avg") for k in keys) and any(k.endswith(".exp_avg_sq") for k in keys)
    assert all("lora_" in k for k in keys)


def test_cli_overrides(tmp_path, monkeypatch):
    import rait.stages.rehearse as rh
    from rait.cli import main

    seen = {}
    monkeypatch.setattr(rh, "rehearse", lambda cfg: seen.setdefault("cfg", cfg) and Path(cfg.out))
    assert main(["rehearse", "--table", "t.jsonl", "--out", str(tmp_path), "--set", "n=7",
                 "--set", "train.lora_r=4", "--set", "fallback=top_k"]) == 0
    cfg = seen["cfg"]
    assert (cfg.n, cfg.train.lora_r, cfg.fallback, cfg.table) == (7, 4, "top_k", "t.jsonl")
