"""Row normalisation and chunked similarity blocks (``A @ Bᵀ`` written to a float32 ``.npy`` memmap).

Example:
    >>> import numpy as np, tempfile, os
    >>> from rait.gradients.similarity import gram_to_file, l2_normalize
    >>> a = l2_normalize(np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32))
    >>> path = os.path.join(tempfile.mkdtemp(), "aa.npy")
    >>> s = gram_to_file(a, a, path, chunk=2)
    >>> bool(np.allclose(np.diag(np.load(path)), 1, atol=1e-5))
    True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, eps)


def gram_to_file(a: np.ndarray, b: np.ndarray, path: str | Path, chunk: int = 1024) -> Path:
    """Write ``a @ b.T`` (float32, ``len(a) x len(b)``) to ``path`` in row chunks; atomic (tmp + rename).

    Peak extra memory is one ``chunk x len(b)`` float32 block (no N x N float64 intermediate).
    """
    from rait.core.artifacts import atomic_path

    path = Path(path)
    with atomic_path(path, ".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(a), len(b)))
        bt = np.ascontiguousarray(np.asarray(b, dtype=np.float32).T)
        for s in range(0, len(a), chunk):
            out[s: s + chunk] = np.asarray(a[s: s + chunk], dtype=np.float32) @ bt
        out.flush()
        del out
    return path
