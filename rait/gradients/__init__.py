"""GRAIT gradient features: per-sample LoRA gradients, Adam preconditioning, projection, store, similarities.

Modules: :mod:`.persample` (batched per-sample gradients + features), :mod:`.projection` (seeded Rademacher
projections), :mod:`.store` (sharded, resumable store + merge), :mod:`.similarity` (chunked cosine blocks),
:mod:`.cli` (``rait grads``). docs/grait.md describes the files and choices.

Example:
    >>> from rait.gradients.projection import Projector
    >>> Projector(dim=8).describe()["kind"]
    'hashed'
"""
