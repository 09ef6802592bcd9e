"""Generation backends behind one interface: ``hf`` (CPU/GPU, batched, prefix-shared sampling) and ``vllm``.

Example:
    >>> from rait.generation import BACKENDS
    >>> sorted(BACKENDS)
    ['hf', 'vllm']
"""

from __future__ import annotations

from typing import Any

from rait.generation.base import Backend, Completion, SamplingConfig

BACKENDS = ("hf", "vllm")


def get_backend(name: str, model_spec: str, dtype: str = "auto", **kwargs: Any) -> Backend:
    """Build a backend by name for a model spec (see :func:`rait.models.load_model`).

    Args:
        name: ``hf`` or ``vllm`` (vllm is imported only when selected).
        model_spec: model spec.
        dtype: ``auto`` / ``float32`` / ``bfloat16``.
        **kwargs: backend options (``batch_size``, ``device``, ...).
    """
    if name == "hf":
        from rait.generation.hf import HFBackend

        return HFBackend.from_spec(model_spec, dtype=dtype, **kwargs)
    if name == "vllm":
        from rait.generation.vllm_backend import VLLMBackend

        return VLLMBackend.from_spec(model_spec, dtype=dtype, **kwargs)
    from rait.config import ConfigError

    raise ConfigError(f"unknown backend {name!r}; expected one of {BACKENDS}")


__all__ = ["Backend", "Completion", "SamplingConfig", "get_backend", "BACKENDS"]
