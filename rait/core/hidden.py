"""Hidden states of a model on its questions, and a linear probe of what it knows (``abstain_probe``).

:func:`question_states` runs one forward pass per question (the 0-shot BASIC evaluation prompt, chat template)
and keeps the hidden state of the last prompt token at every layer: an ``[n, layers + 1, d]`` float32 array.
:func:`fit_probe` picks the layer whose logistic-regression probe (scikit-learn, standardised features)
predicts M0's correctness best under stratified k-fold cross-validation (AUROC), returns cross-fitted
p(correct) for the pool (so a threshold fit on them is not fit on the probe's own training points) and the probe
refit on the whole pool.

Example:
    >>> import numpy as np
    >>> from rait.core.hidden import fit_probe
    >>> rng = np.random.default_rng(0)
    >>> y = np.array([0, 1] * 20)
    >>> X = rng.normal(size=(40, 3, 4)); X[:, 2, 0] += 3 * y      # layer 2 carries the signal
    >>> probe = fit_probe(X, y, folds=4, seed=0)
    >>> probe["layer"], probe["cv_auroc"][2] > 0.9, probe["pool_scores"].shape
    (2, True, (40,))
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rait.errors import RaitError


def question_states(model: Any, tok: Any, prompts: Sequence[str], batch_size: int = 16) -> np.ndarray:
    """Last-prompt-token hidden state of every layer: ``[n, num_layers + 1, hidden]`` (float32).

    Args:
        model: a causal LM (transformers).
        tok: its tokenizer.
        prompts: rendered prompts (one per question).
        batch_size: prompts per forward pass (left-padded, so the last position is the last prompt token).
    """
    import torch

    side = tok.padding_side
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    out = []
    try:
        with torch.inference_mode():
            for i in range(0, len(prompts), batch_size):
                enc = tok(list(prompts[i: i + batch_size]), return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model.device)
                hs = model(**enc, output_hidden_states=True, logits_to_keep=1).hidden_states
                out.append(torch.stack([h[:, -1, :] for h in hs], dim=1).float().cpu().numpy())
    finally:
        tok.padding_side = side
    return np.concatenate(out) if out else np.zeros((0, 0, 0), dtype=np.float32)


def _pipeline(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=seed))


def fit_probe(states: np.ndarray, known: Sequence[int], folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Choose the layer by cross-validated AUROC and fit the probe on the pool.

    Args:
        states: ``[n, layers, d]`` hidden states of the pool questions.
        known: 1 where M0 answers the pool item correctly, else 0.
        folds: stratified folds (capped by the minority class count).
        seed: fold shuffling and solver seed.

    Returns:
        ``{"layer", "cv_auroc": [per layer], "pool_scores": cross-fitted p(correct), "model": fitted probe}``.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.asarray(known, dtype=int)
    minority = int(min(y.sum(), len(y) - y.sum()))
    if minority < 2:
        raise RaitError(f"hidden-state probe: the pool has {minority} item(s) of one class (known/unknown); "
                        "a probe needs at least 2 of each — use a larger or more varied pool")
    cv = StratifiedKFold(n_splits=min(folds, minority), shuffle=True, random_state=seed)
    aurocs, preds = [], []
    for layer in range(states.shape[1]):
        p = cross_val_predict(_pipeline(seed), states[:, layer, :], y, cv=cv, method="predict_proba")[:, 1]
        aurocs.append(float(roc_auc_score(y, p)))
        preds.append(p)
    best = int(np.argmax(aurocs))
    model = _pipeline(seed).fit(states[:, best, :], y)
    return {"layer": best, "cv_auroc": aurocs, "pool_scores": preds[best], "model": model}


def probe_scores(probe: dict[str, Any], states: np.ndarray) -> np.ndarray:
    """p(correct) of the fitted probe on new hidden states (its chosen layer)."""
    return probe["model"].predict_proba(states[:, probe["layer"], :])[:, 1]
