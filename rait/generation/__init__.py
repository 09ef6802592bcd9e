"""Generation backends behind one interface (:class:`~rait.generation.base.Backend`, a Protocol): ``hf`` (CPU/GPU,
batched, prefix-shared sampling) and ``vllm``, registered by name in :data:`BACKENDS`.

A backend is a factory ``(model_spec, dtype=..., **options) -> Backend`` registered with :func:`register_backend`;
its module is imported only when the backend is selected (docs/extending.md adds one).

Example:
    >>> from rait.generation import BACKENDS
    >>> list(BACKENDS)
    ['hf', 'vllm']
    >>> BACKENDS.get("hff")
    Traceback (most recent call last):
    ...
    rait.core.config.ConfigError: unknown backend 'hff' (did you mean 'hf'?); known: hf, vllm
"""

from __future__ import annotations

from typing import Any, Callable

from rait.core.registry import Registry
from rait.generation.base import Backend, Completion, SamplingConfig

Factory = Callable[..., Backend]

#: backend name -> factory ``(model_spec, dtype="auto", **options) -> Backend``
BACKENDS: Registry[Factory] = Registry("backend")


def register_backend(name: str) -> Callable[[Factory], Factory]:
    """Decorator registering a backend factory under ``name``."""

    def deco(fn: Factory) -> Factory:
        return BACKENDS.add(name, fn)

    return deco


@register_backend("hf")
def _hf(model_spec: str, dtype: str = "auto", **kwargs: Any) -> Backend:
    from rait.generation.hf import HFBackend

    return HFBackend.from_spec(model_spec, dtype=dtype, **kwargs)


@register_backend("vllm")
def _vllm(model_spec: str, dtype: str = "auto", **kwargs: Any) -> Backend:
    from rait.generation.vllm_backend import VLLMBackend

    return VLLMBackend.from_spec(model_spec, dtype=dtype, **kwargs)


def get_backend(name: str, model_spec: str, dtype: str = "auto", **kwargs: Any) -> Backend:
    """Build a backend by name for a model spec (see :func:`rait.core.models.load_model`).

    Args:
        name: a registered backend (``hf``, ``vllm``; its module is imported only when selected).
        model_spec: model spec.
        dtype: ``auto`` / ``float32`` / ``bfloat16``.
        **kwargs: backend options (``batch_size``, ``device``, ...).
    """
    return BACKENDS.get(name)(model_spec, dtype=dtype, **kwargs)


__all__ = ["Backend", "Completion", "SamplingConfig", "get_backend", "register_backend", "BACKENDS"]
