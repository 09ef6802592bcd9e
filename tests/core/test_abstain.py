"""Golden cases for the abstention threshold (rait.core.abstain) and the hidden-state probe (rait.core.hidden)."""

import numpy as np
import pytest

from rait.core.abstain import apply_threshold, fit_threshold, pool_verdicts
from rait.core.hidden import fit_probe, probe_scores, question_states
from rait.core.metrics import ths
from rait.errors import RaitError


def test_fit_threshold_hand_checked():
    # Reference: 2 correct, 3 wrong of 5 -> P_c0 = 40, P_w0 = 60. Answering the top two (0.9, 0.7): P_c 40,
    # P_w 0 -> THS 40. Answering the top three adds a wrong one: 40 - 20*40/60 = 26.7. Top one: 20.
    fit = fit_threshold([0.9, 0.7, 0.6, 0.2, 0.1], ["correct", "correct", "wrong", "wrong", "wrong"])
    assert fit["tau"] == 0.7
    assert fit["ths"] == pytest.approx(40.0)
    assert fit["refused"] == pytest.approx(0.6)
    assert (fit["p_c0"], fit["p_w0"]) == (40.0, 60.0)


def test_fit_threshold_matches_brute_force():
    rng = np.random.default_rng(3)
    s = rng.random(60).round(2)  # ties on purpose
    v = np.where(rng.random(60) < s, "correct", np.where(rng.random(60) < 0.1, "refuse", "wrong")).tolist()
    fit = fit_threshold(s, v)
    c0 = 100 * np.mean([x == "correct" for x in v])
    w0 = 100 * np.mean([x == "wrong" for x in v])
    best = max(ths(100 * np.mean([x == "correct" and si >= t for x, si in zip(v, s)]),
                   100 * np.mean([x == "wrong" and si >= t for x, si in zip(v, s)]), c0, w0) for t in set(s))
    assert fit["ths"] == pytest.approx(max(best, 0.0))
    out = apply_threshold(fit["tau"], s, v)
    assert out.count("refuse") == sum(si < fit["tau"] for si in s) + sum(x == "refuse" and si >= fit["tau"]
                                                                         for x, si in zip(v, s))


def test_ties_go_to_the_lowest_threshold_and_no_gain_means_answer_all():
    assert fit_threshold([0.5, 0.5, 0.5], ["correct", "wrong", "wrong"])["tau"] is None
    fit = fit_threshold([1.0, 1.0, 0.0], ["correct", "correct", "wrong"])
    assert fit["tau"] == 1.0 and fit["refused"] == pytest.approx(1 / 3)
    assert apply_threshold(None, [0.0], ["wrong"]) == ["wrong"]


def test_bad_pool_inputs_are_named():
    with pytest.raises(RaitError, match="empty"):
        fit_threshold([], [])
    with pytest.raises(RaitError, match="NaN"):
        fit_threshold([float("nan")], ["wrong"])
    with pytest.raises(RaitError, match="2 scores for 1"):
        fit_threshold([0.1, 0.2], ["wrong"])
    with pytest.raises(RaitError, match="greedy"):
        pool_verdicts([{"id": "a"}])


def test_pool_verdicts_prefer_greedy():
    t = [{"greedy_correct": True, "correctness": 0.0}, {"greedy_correct": False, "correctness": 1.0}]
    assert pool_verdicts(t) == (["correct", "wrong"], "greedy_correct")
    assert pool_verdicts([{"correctness": 0.5}, {"correctness": 0.4}])[0] == ["correct", "wrong"]


def test_probe_picks_the_informative_layer_and_scores_new_states():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 30)
    X = rng.normal(size=(60, 4, 8))
    X[:, 1, 3] += 2.5 * y
    probe = fit_probe(X, y, folds=5, seed=0)
    assert probe["layer"] == 1 and probe["cv_auroc"][1] > 0.85
    Xt = rng.normal(size=(10, 4, 8))
    Xt[:5, 1, 3] += 5
    p = probe_scores(probe, Xt)
    assert p[:5].mean() > p[5:].mean()
    with pytest.raises(RaitError, match="one class"):
        fit_probe(X, np.ones(60, dtype=int))


def test_question_states_shape_and_padding_independence(tiny_model_dir):
    from rait.core.models import load_model

    model, tok = load_model(str(tiny_model_dir), dtype="float32")
    prompts = ["What is the capital of France?", "Who wrote Hamlet? A longer question here."]
    both = question_states(model, tok, prompts, batch_size=2)
    cfg = model.config
    assert both.shape == (2, cfg.num_hidden_layers + 1, cfg.hidden_size)
    alone = question_states(model, tok, prompts[:1], batch_size=1)
    np.testing.assert_allclose(both[0], alone[0], atol=1e-4)  # left padding does not change the last state
