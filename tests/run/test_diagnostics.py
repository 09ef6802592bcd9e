"""Golden cases for rait.run.diagnostics (knowledge curve, refusal alignment, label quality)."""

import pytest

from rait.run.diagnostics import deciles, knowledge_curve, label_quality, refusal_alignment


def test_deciles_by_rank_with_ties():
    assert deciles(list(range(20))) == [i // 2 for i in range(20)]
    assert deciles([3, 3, 1, 2], n_bins=4) == [2, 2, 0, 1]  # ties share the bin of their first rank (2 of 4)
    assert deciles([]) == []


def test_knowledge_curve_hand_checked():
    pop = {f"q{i}": float(i) for i in range(4)}
    verdicts = {"init_basic": {"q0": ["wrong"], "q1": ["refuse"], "q2": ["correct"], "q3": ["correct"]},
                "m": {"q0": ["refuse", "wrong"], "q1": ["refuse", "refuse"], "q2": ["correct", "refuse"],
                      "q3": ["correct", "correct"]}}
    kc = knowledge_curve(pop, verdicts, n_bins=2)
    assert [b["n"] for b in kc["bins"]] == [2, 2] and kc["bins"][0] == {"lo": 0.0, "hi": 1.0, "n": 2}
    assert kc["methods"]["init_basic"]["P_c"] == [0.0, 100.0]
    assert kc["methods"]["m"]["P_r"] == [75.0, 25.0]
    assert kc["methods"]["m"]["P_w"] == [25.0, 0.0]


def test_refusal_alignment_perfect_and_inverted():
    m0 = {"a": "correct", "b": "wrong", "c": "refuse", "d": "correct"}
    perfect = refusal_alignment({"a": [0], "b": [1], "c": [1], "d": [0]}, m0)
    assert perfect["auroc"] == 1.0 and perfect["precision"] == 1.0 and perfect["recall"] == 1.0
    inverted = refusal_alignment({"a": [1], "b": [0], "c": [0], "d": [1]}, m0)
    assert inverted["auroc"] == 0.0 and inverted["precision"] == 0.0
    seeds = refusal_alignment({"a": [0, 1], "b": [1, 1], "c": [0, 0], "d": [0, 0]}, m0)
    assert seeds["auroc"] == pytest.approx(0.625) and seeds["recall"] == 0.5
    nothing = refusal_alignment({"a": [0], "b": [0]}, m0)
    assert nothing["precision"] is None and nothing["refused"] == 0.0


def test_label_quality_needs_greedy_verdicts():
    assert label_quality([{"id": "a", "label": "idk"}], [{"id": "a", "correctness": 0.2}]) is None
    t = [{"id": i, "greedy_correct": i in "ab"} for i in "abcd"]
    q = label_quality([{"id": "a", "label": "van"}, {"id": "c", "label": "idk"}, {"id": "d", "label": "idk"},
                       {"id": "b", "label": "idk"}], t)
    assert q == {"n_van": 1, "n_idk": 3, "idk_m0_wrong": pytest.approx(2 / 3, abs=1e-4), "van_m0_right": 1.0,
                 "unknown_labelled_idk": 1.0}
