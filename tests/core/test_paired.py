"""Paired Δ statistics (rait.core.paired): hand-checked small cases and the bootstrap against a direct computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rait.core.paired import Z_95, paired_deltas, per_item_rates

A = ["correct", "correct", "wrong", "refuse"]
B = ["correct", "wrong", "wrong", "correct"]


def test_hand_checked_case():
    out = paired_deltas({"a": [A], "b": [B]}, ref=(50.0, 50.0), n_boot=0)
    d = out["pairs"]["a"]["b"]
    # P_c: 2/4 vs 2/4 -> 0; P_w: 1/4 vs 2/4 -> -25; THS = ΔP_c - ΔP_w·(50/50) = 25
    assert (d["P_c"]["value"], d["P_w"]["value"], d["THS"]["value"]) == (0.0, -25.0, 25.0)
    # per-item THS differences: 0, (100 - -100) = 200, 0, (-100 - 0) = -100 -> mean 25, sd (ddof 1) = sqrt(47500/3)
    sd = math.sqrt(47500 / 3)
    assert d["THS"]["sd_item"] == pytest.approx(sd)
    assert d["THS"]["n_for_1pt"] == math.ceil((Z_95 * sd) ** 2) == 60824  # 1.95996² · 15833.3 = 60823.1
    assert out["pairs"]["b"]["a"]["THS"]["value"] == -25.0  # antisymmetric
    assert d["THS"]["lo"] == d["THS"]["hi"] == 25.0  # n_boot 0: the interval collapses
    assert out["n"] == 4 and out["methods"] == ["a", "b"]


def test_bootstrap_matches_direct_computation():
    rng = np.random.default_rng(1)
    verdicts = ["correct", "wrong", "refuse", "fail_parse"]
    a = [list(rng.choice(verdicts, 30)) for _ in range(3)]
    b = [list(rng.choice(verdicts, 30))]
    out = paired_deltas({"a": a, "b": b}, ref=(40.0, 30.0), n_boot=500, seed=7)
    ca, wa = per_item_rates(a)
    cb, wb = per_item_rates(b)
    d = (ca - wa * 40 / 30) - (cb - wb * 40 / 30)
    idx = np.random.default_rng(7).integers(0, 30, size=(500, 30))
    lo, hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
    cell = out["pairs"]["a"]["b"]["THS"]
    assert cell["value"] == pytest.approx(d.mean())
    assert (cell["lo"], cell["hi"]) == (pytest.approx(lo), pytest.approx(hi))
    assert cell["significant"] == (lo > 0 or hi < 0)
    # the same resample for the same seed: deterministic
    assert paired_deltas({"a": a, "b": b}, ref=(40.0, 30.0), n_boot=500, seed=7) == out


def test_seeds_kept_together_and_order_free():
    s0 = ["correct", "wrong", "refuse", "correct"]
    s1 = ["wrong", "wrong", "correct", "correct"]
    one = paired_deltas({"a": [s0, s1], "b": [B]}, ref=(50.0, 50.0), n_boot=300, seed=3)
    two = paired_deltas({"a": [s1, s0], "b": [B]}, ref=(50.0, 50.0), n_boot=300, seed=3)
    assert one == two
    c, w = per_item_rates([s0, s1])
    assert c.tolist() == [50.0, 0.0, 50.0, 100.0] and w.tolist() == [50.0, 100.0, 0.0, 0.0]


def test_significance_marks():
    better = ["correct"] * 20
    worse = ["wrong"] * 20
    out = paired_deltas({"x": [better], "y": [worse], "z": [worse]}, ref=(50.0, 50.0), n_boot=200)
    assert out["pairs"]["x"]["y"]["THS"] == {"value": 200.0, "lo": 200.0, "hi": 200.0, "significant": True,
                                             "sd_item": 0.0, "n_for_1pt": 0}
    assert out["pairs"]["y"]["z"]["P_c"]["significant"] is False  # identical: Δ = 0 everywhere
    assert "THS" not in paired_deltas({"x": [better], "y": [worse]}, ref=None, n_boot=0)["pairs"]["x"]["y"]


def test_errors():
    with pytest.raises(ValueError, match="different numbers of items"):
        paired_deltas({"a": [A], "b": [A[:3]]})
    with pytest.raises(ValueError, match="same non-empty"):
        paired_deltas({"a": [A, A[:2]], "b": [A]})
    with pytest.raises(ValueError, match="unknown verdict"):
        paired_deltas({"a": [["maybe"]], "b": [["correct"]]})
