"""HFBackend on the tiny in-code Llama (fp32, CPU): greedy parity with ``model.generate``, seeded sampling,
n samples, stop strings / EOS, probabilities and log-probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from rait.generation import BACKENDS, get_backend
from rait.generation.base import Completion, SamplingConfig
from rait.generation.hf import HFBackend

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nWho wrote Hamlet?<|im_end|>\n<|im_start|>assistant\n",
    "Question: What is 2+2? Answer:",
    "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nAnswer the following question, and if you don't know the "
    "answer, only reply with 'I don't know': Capital of Italy?<|im_end|>\n<|im_start|>assistant\n",
    "abc",
]
MAX_NEW = 12



@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    """The tiny model with its weights re-drawn at std 0.3: the saved init (std 0.02) decodes one token over and
    over, which would make the parity checks below trivially true."""
    from rait.core.models import load_model

    model, tok = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model, tok


@pytest.fixture(scope="module")
def backend(loaded):
    model, tok = loaded
    return HFBackend(model, tok, batch_size=4)


def _ids(tok, text):
    return tok.encode(text, add_special_tokens=False)


@torch.inference_mode()
def _reference_greedy(model, tok, eos_ids, prompt, max_new):
    """Token ids ``model.generate(do_sample=False)`` produces for one unpadded prompt, cut before EOS."""
    ids = torch.tensor([_ids(tok, prompt)])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new,
                         eos_token_id=eos_ids, pad_token_id=tok.pad_token_id)
    new = out[0, ids.shape[1]:].tolist()
    for i, t in enumerate(new):
        if t in eos_ids:
            return new[:i], True
    return new, False


@pytest.fixture(scope="module")
def reference(loaded, backend):
    model, tok = loaded
    return [_reference_greedy(model, tok, backend.eos_ids, p, MAX_NEW) for p in PROMPTS]


def _greedy(**kw):
    kw.setdefault("max_new_tokens", MAX_NEW)
    kw.setdefault("stop", [])
    return SamplingConfig(temperature=0.0, **kw)


def test_backend_registry(tiny_model_dir):
    assert list(BACKENDS) == ["hf", "vllm"]
    be = get_backend("hf", str(tiny_model_dir), dtype="float32", device="cpu", batch_size=2)
    assert isinstance(be, HFBackend) and be.batch_size == 2 and be.name == "hf"
    from rait.core.config import ConfigError

    with pytest.raises(ConfigError, match="unknown backend"):
        get_backend("tgi", str(tiny_model_dir))


def test_eos_ids(backend, loaded):
    _, tok = loaded
    assert tok.eos_token_id in backend.eos_ids
    assert tok.convert_tokens_to_ids("<|im_end|>") in backend.eos_ids
    assert backend.pad_id == tok.pad_token_id


@pytest.mark.parametrize("batch_size", [1, 4])
def test_greedy_matches_model_generate(loaded, reference, batch_size):
    model, tok = loaded
    be = HFBackend(model, tok, batch_size=batch_size)
    outs = be.generate(PROMPTS, n=1, sampling=_greedy())
    assert len(outs) == len(PROMPTS) and all(len(o) == 1 for o in outs)
    for (ref_ids, hit_eos), [c] in zip(reference, outs):
        assert c.text == tok.decode(ref_ids, skip_special_tokens=True)
        assert c.n_tokens == len(ref_ids)
        assert c.finish == ("stop" if hit_eos else "length")
        assert c.token_logprobs is None


@torch.inference_mode()
def test_greedy_matches_batched_model_generate(loaded, backend):
    """Same as above against one left-padded ``model.generate`` batch."""
    model, tok = loaded
    enc = tok(PROMPTS[:4], padding=True, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, do_sample=False, max_new_tokens=MAX_NEW, eos_token_id=backend.eos_ids,
                         pad_token_id=tok.pad_token_id)
    refs = []
    for row in out[:, enc["input_ids"].shape[1]:].tolist():
        cut = next((i for i, t in enumerate(row) if t in backend.eos_ids), len(row))
        refs.append(tok.decode(row[:cut], skip_special_tokens=True))
    got = [o[0].text for o in backend.generate(PROMPTS[:4], n=1, sampling=_greedy())]
    assert got == refs


FEWSHOT = ("<|im_start|>system\n<|im_end|>\n<|im_start|>user\nQuestion: Who wrote Hamlet?\nAnswer:<|im_end|>\n"
           "<|im_start|>assistant\nShakespeare\n<|im_end|>\n<|im_start|>user\nQuestion: ")
SHARED = [FEWSHOT + q + "\nAnswer:<|im_end|>\n<|im_start|>assistant\n"
          for q in ("Capital of France?", "What is 2+2?", "Who painted the Mona Lisa in Florence?", "Why?")]


def test_shared_prefix_prefilled_once_gives_the_same_answers(loaded, backend):
    """Prompts with a long common prefix (the papers' few-shot turns): the prefix is prefilled once per batch and
    the greedy answers and their log-probs are those of ``model.generate`` on each unpadded prompt."""
    from rait.generation.hf import shared_prefix_len

    model, tok = loaded
    enc = [_ids(tok, p) for p in SHARED]
    assert shared_prefix_len(enc) >= backend.min_shared_prefix
    calls = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["input_ids"].shape), with_kwargs=True)
    before = backend.prefill_tokens
    try:
        outs = backend.generate(SHARED, n=1, sampling=_greedy(logprobs=True))
    finally:
        hook.remove()
    assert calls[0] == (1, shared_prefix_len(enc))  # the prefix, once
    assert backend.prefill_tokens - before == sum(len(e) for e in enc) - 3 * shared_prefix_len(enc)  # 4 prompts
    assert calls[1][0] == 4 and calls[1][1] == max(len(e) for e in enc) - shared_prefix_len(enc)
    off = HFBackend(model, tok, batch_size=4, min_shared_prefix=0)
    for p, [c], [c0] in zip(SHARED, outs, off.generate(SHARED, n=1, sampling=_greedy(logprobs=True))):
        ref_ids, _ = _reference_greedy(model, tok, backend.eos_ids, p, MAX_NEW)
        assert c.text == c0.text == tok.decode(ref_ids, skip_special_tokens=True)
        assert c.token_logprobs == pytest.approx(c0.token_logprobs, abs=1e-4)


def test_top_k_1_sampling_is_greedy(backend):
    g = [o[0].text for o in backend.generate(PROMPTS, n=1, sampling=_greedy())]
    s = backend.generate(PROMPTS, n=2, sampling=SamplingConfig(temperature=1.0, top_k=1, max_new_tokens=MAX_NEW,
                                                                stop=[]), seed=3)
    assert [[c.text for c in o] for o in s] == [[t, t] for t in g]


def test_sampling_seeded(backend):
    s = SamplingConfig(temperature=1.0, max_new_tokens=8, stop=[])
    a = backend.generate(PROMPTS, n=3, sampling=s, seed=7)
    b = backend.generate(PROMPTS, n=3, sampling=s, seed=7)
    c = backend.generate(PROMPTS, n=3, sampling=s, seed=8)
    texts = lambda r: [[x.text for x in o] for o in r]  # noqa: E731
    assert a == b
    assert texts(a) != texts(c)
    # the k samples of one prompt are not all copies of each other
    assert any(len(set(o)) > 1 for o in texts(a))


def test_sampling_top_p_and_top_k_run(backend):
    for s in (SamplingConfig(temperature=0.7, top_p=0.5, max_new_tokens=5, stop=[]),
              SamplingConfig(temperature=1.3, top_k=5, max_new_tokens=5, stop=[])):
        a = backend.generate(PROMPTS[:2], n=2, sampling=s, seed=1)
        assert a == backend.generate(PROMPTS[:2], n=2, sampling=s, seed=1)


@pytest.mark.parametrize("n", [1, 4])
def test_n_samples_structure(backend, n):
    s = SamplingConfig(temperature=1.0, max_new_tokens=6, stop=[])
    outs = backend.generate(PROMPTS, n=n, sampling=s, seed=0)
    assert len(outs) == len(PROMPTS)
    for o in outs:
        assert len(o) == n
        for c in o:
            assert isinstance(c, Completion) and isinstance(c.text, str)
            assert 0 <= c.n_tokens <= 6 and c.finish in ("stop", "length")
            assert c.finish == "stop" or c.n_tokens == 6


def test_max_rows_limits_batch_but_not_results(loaded):
    model, tok = loaded
    be = HFBackend(model, tok, batch_size=4, max_rows=4)  # n=4 -> one prompt per batch
    s = SamplingConfig(temperature=1.0, max_new_tokens=4, stop=[])
    outs = be.generate(PROMPTS, n=4, sampling=s, seed=0)
    assert [len(o) for o in outs] == [4] * len(PROMPTS)


def test_empty_prompt_list(backend):
    assert backend.generate([], n=1, sampling=_greedy()) == []


def test_greedy_with_n_gt_1_raises(backend):
    with pytest.raises(ValueError, match="greedy"):
        backend.generate(PROMPTS, n=2, sampling=_greedy())


# ----------------------------------------------------------------------------- stop strings and EOS
def test_single_token_stop(loaded, backend, reference):
    _, tok = loaded
    ref_ids, _ = reference[0]
    full = tok.decode(ref_ids, skip_special_tokens=True)
    piece = next(tok.decode([t]) for t in ref_ids[2:] if tok.decode([t]).isalnum())
    assert len(_ids(tok, piece)) == 1
    [c] = backend.generate([PROMPTS[0]], n=1, sampling=_greedy(stop=[piece]))[0]
    assert c.text == full[: full.index(piece)]
    assert c.finish == "stop"
    assert c.n_tokens <= ref_ids.index(next(t for t in ref_ids if piece in tok.decode([t]))) + 1


def test_multi_token_stop(loaded, backend, reference):
    _, tok = loaded
    found = None
    for k, (ref_ids, _) in enumerate(reference):
        for i in range(1, len(ref_ids) - 2):
            stop = tok.decode(ref_ids[i:i + 2])
            if stop.isascii() and stop.isprintable() and stop.strip() and len(_ids(tok, stop)) > 1:
                found = (k, stop)
                break
        if found:
            break
    assert found, "no printable two-token span in the reference outputs"
    k, stop = found
    ref_ids = reference[k][0]
    full = tok.decode(ref_ids, skip_special_tokens=True)
    [c] = backend.generate([PROMPTS[k]], n=1, sampling=_greedy(stop=[stop]))[0]
    assert c.text == full[: full.index(stop)]
    assert c.finish == "stop"
    assert c.n_tokens < len(ref_ids)  # decoding stopped early


def test_stops_with_early_finishing_rows(loaded, reference):
    """Rows that stop early are dropped from the batch; the others must continue unchanged."""
    model, tok = loaded
    be = HFBackend(model, tok, batch_size=8)
    ref0 = reference[0][0]
    stop = tok.decode([ref0[1]])  # prompt 0 stops at its second token
    # 1 of 4 rows done triggers cache compaction (a quarter of the rows)
    outs = be.generate(PROMPTS[:4], n=1, sampling=_greedy(stop=[stop]))
    n_stopped = 0
    for (ref_ids, _), [c] in zip(reference[:4], outs):
        full = tok.decode(ref_ids, skip_special_tokens=True)
        if stop in full:
            assert c.text == full[: full.index(stop)]
            n_stopped += c.finish == "stop"
        else:
            assert c.text == full
    assert n_stopped >= 1 and outs[0][0].n_tokens <= 2


def test_eos_stops(loaded):
    """Force EOS at the 3rd decoding step through a logits hook."""
    model, tok = loaded
    be = HFBackend(model, tok, batch_size=4)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    base = be.generate(PROMPTS[:1], n=1, sampling=_greedy(max_new_tokens=2))[0][0]
    calls = {"n": 0}

    def hook(module, inputs, output):
        calls["n"] += 1
        if calls["n"] >= 3:
            output[..., eos] += 1e4
        return output

    h = model.lm_head.register_forward_hook(hook)
    try:
        [c] = be.generate(PROMPTS[:1], n=1, sampling=_greedy(logprobs=True))[0]
    finally:
        h.remove()
    assert c.finish == "stop" and c.n_tokens == 2 and c.text == base.text
    assert len(c.token_logprobs) == 2  # the EOS token is not part of the answer


def test_eos_first_gives_empty_answer(loaded):
    model, tok = loaded
    be = HFBackend(model, tok)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    h = model.lm_head.register_forward_hook(lambda m, i, o: o.index_add_(
        -1, torch.tensor([eos]), torch.full((*o.shape[:-1], 1), 1e4)))
    try:
        outs = be.generate(PROMPTS, n=3, sampling=SamplingConfig(temperature=1.0, max_new_tokens=5), seed=0)
    finally:
        h.remove()
    assert all(c.text == "" and c.n_tokens == 0 and c.finish == "stop" for o in outs for c in o)


# ----------------------------------------------------------------------------- probabilities
@torch.inference_mode()
def _manual_last_probs(model, tok, text_ids):
    logits = model(input_ids=torch.tensor([text_ids])).logits[0, -1].float()
    return torch.softmax(logits, dim=-1)


def test_next_token_probs(loaded, backend):
    model, tok = loaded
    cands = ["A", "B", "C", "D"]
    got = backend.next_token_probs(PROMPTS, cands)
    assert len(got) == len(PROMPTS) and all(len(g) == 4 for g in got)
    cand_ids = [_ids(tok, c)[0] for c in cands]
    for p, g in zip(PROMPTS, got):
        probs = _manual_last_probs(model, tok, _ids(tok, p))
        assert g == pytest.approx([float(probs[i]) for i in cand_ids], rel=1e-4, abs=1e-7)
        assert 0 < sum(g) < 1


def test_next_token_probs_with_shared_prefixes(loaded):
    """MMLU-like prompts (two subjects' demonstrations, then each item's question): neighbours in token order share
    their subject's prefix, which runs once per batch; the probabilities are those of each prompt run alone."""
    model, tok = loaded
    demos = {s: "".join(f"Question {s} {j}: what is {j}?\nA. 1\nB. 2\nAnswer: B\n\n" for j in range(6))
             for s in ("algebra", "history")}
    prompts = [demos[s] + f"Question {s}: item {i}?\nA. x\nB. y\nAnswer:" for i in range(5)
               for s in ("history", "algebra")]
    be = HFBackend(model, tok, batch_size=4)
    plan = be._score_batches([_ids(tok, p) for p in prompts])
    assert sorted(i for b, _ in plan for i in b) == list(range(10))
    assert all(shared > 60 for b, shared in plan if len(b) > 1)
    assert sum(len(b) for b, shared in plan if shared) == 8
    assert all(len({prompts[i][:8] for i in b}) == 1 for b, _ in plan)  # one subject per batch
    got = be.next_token_probs(prompts, ["A", "B"])
    cand_ids = [_ids(tok, c)[0] for c in "AB"]
    for p, g in zip(prompts, got):
        probs = _manual_last_probs(model, tok, _ids(tok, p))
        assert g == pytest.approx([float(probs[i]) for i in cand_ids], rel=1e-4, abs=1e-7)


def test_next_token_probs_uses_first_token_of_multi_token_candidate(loaded, backend):
    model, tok = loaded
    cand = "Shakespeare"
    ids = _ids(tok, cand)
    got = backend.next_token_probs(PROMPTS[:1], [cand])[0][0]
    probs = _manual_last_probs(model, tok, _ids(tok, PROMPTS[0]))
    assert got == pytest.approx(float(probs[ids[0]]), rel=1e-4)
    with pytest.raises(ValueError, match="encodes to no token"):
        backend.next_token_probs(PROMPTS[:1], [""])


def test_last_token_probs(loaded, backend):
    model, tok = loaded
    texts = [p + x for p in PROMPTS[:3] for x in ("A", "B")]
    got = backend.last_token_probs(texts)
    assert len(got) == len(texts)
    for t, g in zip(texts, got):
        ids = _ids(tok, t)
        probs = _manual_last_probs(model, tok, ids[:-1])
        assert g == pytest.approx(float(probs[ids[-1]]), rel=1e-4, abs=1e-7)


def test_batch_size_does_not_change_probs(loaded):
    model, tok = loaded
    a = HFBackend(model, tok, batch_size=1).next_token_probs(PROMPTS, ["A", "B"])
    b = HFBackend(model, tok, batch_size=5).next_token_probs(PROMPTS, ["A", "B"])
    for x, y in zip(a, b):
        assert x == pytest.approx(y, rel=1e-4, abs=1e-7)


def test_token_budget_splits_scoring_batches_without_changing_probs(loaded):
    model, tok = loaded
    budget = HFBackend(model, tok, batch_size=5, max_score_tokens=1)  # every prompt in a batch of its own
    lengths = [len(tok.encode(p)) for p in PROMPTS]
    assert [len(b) for b in budget._batches(lengths, 5, 1)] == [1] * len(PROMPTS)
    assert all(len(b) * max(lengths[i] for i in b) <= 2 * max(lengths)
               for b in budget._batches(lengths, 5, 2 * max(lengths)))
    a = budget.next_token_probs(PROMPTS, ["A", "B"])
    b = HFBackend(model, tok, batch_size=5).next_token_probs(PROMPTS, ["A", "B"])
    for x, y in zip(a, b):
        assert x == pytest.approx(y, rel=1e-4, abs=1e-7)
    texts = [p + " A" for p in PROMPTS]
    assert budget.last_token_probs(texts) == pytest.approx(
        HFBackend(model, tok, batch_size=5).last_token_probs(texts), rel=1e-4, abs=1e-7)


# ----------------------------------------------------------------------------- log-probabilities
@torch.inference_mode()
def _teacher_forced_logprobs(model, prompt_ids, gen_ids):
    ids = torch.tensor([prompt_ids + gen_ids])
    logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    start = len(prompt_ids) - 1
    return [float(logp[start + i, t]) for i, t in enumerate(gen_ids)]


def test_greedy_token_logprobs(loaded, backend, reference):
    model, tok = loaded
    outs = backend.generate(PROMPTS, n=1, sampling=_greedy(logprobs=True))
    for p, (ref_ids, _), [c] in zip(PROMPTS, reference, outs):
        assert c.token_logprobs is not None and len(c.token_logprobs) == c.n_tokens == len(ref_ids)
        assert all(lp <= 0 for lp in c.token_logprobs)
        want = _teacher_forced_logprobs(model, _ids(tok, p), ref_ids)
        assert c.token_logprobs == pytest.approx(want, abs=1e-4)


def test_sampled_token_logprobs(backend):
    s = SamplingConfig(temperature=1.0, max_new_tokens=5, stop=[], logprobs=True)
    outs = backend.generate(PROMPTS, n=2, sampling=s, seed=0)
    for o in outs:
        for c in o:
            assert len(c.token_logprobs) == c.n_tokens
            assert all(lp <= 0 and math.isfinite(lp) for lp in c.token_logprobs)
    s2 = SamplingConfig(temperature=1.0, max_new_tokens=5, stop=[], logprobs=False)
    outs2 = backend.generate(PROMPTS, n=2, sampling=s2, seed=0)
    assert all(c.token_logprobs is None for o in outs2 for c in o)
    assert [[c.text for c in o] for o in outs] == [[c.text for c in o] for o in outs2]


def test_sampling_config_validation():
    from rait.core.config import ConfigError

    assert SamplingConfig(temperature=0).greedy and not SamplingConfig().greedy
    with pytest.raises(ConfigError):
        SamplingConfig(temperature=-1)
    with pytest.raises(ConfigError):
        SamplingConfig(top_p=0)
    with pytest.raises(ConfigError):
        SamplingConfig(max_new_tokens=0)


def test_vllm_backend_without_vllm_is_a_clear_error(tiny_model_dir):
    import importlib.util

    from rait.errors import RaitError
    from rait.generation import get_backend

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    with pytest.raises(RaitError, match="vllm extra"):
        get_backend("vllm", str(tiny_model_dir))


@pytest.mark.vllm
def test_vllm_greedy_matches_hf(tiny_model_dir):
    """Backends agree on greedy outputs (run with -m vllm on a machine with vllm)."""
    from rait.generation import get_backend

    prompts = ["<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"]
    s = SamplingConfig(temperature=0.0, max_new_tokens=8, stop=[])
    hf = get_backend("hf", str(tiny_model_dir), dtype="float32").generate(prompts, 1, s)
    vl = get_backend("vllm", str(tiny_model_dir), dtype="float32").generate(prompts, 1, s)
    assert hf[0][0].text == vl[0][0].text


def test_no_deprecation_warning_from_the_sampler(loaded):
    """The sampler uses the cache API of the installed transformers (``cache=`` since 5.24, ``past_key_values``
    before): no FutureWarning / DeprecationWarning while sampling, greedy decoding or scoring."""
    import warnings

    model, tok = loaded
    be = HFBackend(model, tok, batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        be.generate(PROMPTS, n=3, sampling=SamplingConfig(temperature=1.0, max_new_tokens=MAX_NEW), seed=0)
        be.generate(PROMPTS, n=1, sampling=SamplingConfig(temperature=0.0, max_new_tokens=MAX_NEW))
        be.next_token_probs(PROMPTS, ["A", "B"])
        be.last_token_probs(PROMPTS)


def test_reserved_cache_gives_the_same_completions(loaded):
    """The KV cache allocated once per batch decodes exactly what the growing DynamicCache decodes."""
    model, tok = loaded
    s = SamplingConfig(temperature=1.0, max_new_tokens=MAX_NEW, logprobs=True)
    fixed = HFBackend(model, tok, batch_size=2, reserve_cache=True)
    grown = HFBackend(model, tok, batch_size=2, reserve_cache=False)
    assert fixed.reserve_cache and not grown.reserve_cache
    for n, samp in ((3, s), (1, SamplingConfig(temperature=0.0, max_new_tokens=MAX_NEW))):
        a, b = fixed.generate(PROMPTS, n=n, sampling=samp, seed=1), grown.generate(PROMPTS, n=n, sampling=samp, seed=1)
        assert [[c.text for c in o] for o in a] == [[c.text for c in o] for o in b]
    size = fixed._arena.nbytes()  # the backend's one KV block, reused by later calls
    assert size > 0
    fixed.generate(PROMPTS, n=3, sampling=s, seed=2)
    assert fixed._arena.nbytes() == size


def test_kv_budget_caps_rows_per_batch(loaded):
    model, tok = loaded
    be = HFBackend(model, tok, batch_size=32, max_rows=512)
    assert be._per_batch(positions=100, n=4) == 32
    per_row = be._kv_bytes * 100  # bytes of one row's cache
    small = HFBackend(model, tok, batch_size=32, max_kv_mb=per_row * 8 / 2**20)
    assert small._per_batch(positions=100, n=4) == 2  # 8 rows fit: 2 prompts x 4 samples
    assert small._per_batch(positions=100, n=16) == 1  # never below one prompt


def test_release_freed_memory_returns_a_fragmented_heap_to_the_os():
    from rait.generation.cache import keep_freed_memory, release_freed_memory

    def rss_gb():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e9

    if not keep_freed_memory():
        pytest.skip("not glibc")
    big, small = [], []
    for _ in range(40):  # 640 MB in 16 MB tensors, each followed by a small tensor that stays alive
        big.append(torch.ones(4_000_000))
        small.append(torch.ones(1000))
    held = rss_gb()
    del big
    assert release_freed_memory()
    assert rss_gb() < held - 0.4
