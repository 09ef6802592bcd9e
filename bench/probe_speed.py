"""Probe sampling speed: the naive HF loop vs rait's ``hf`` backend, in one process, same questions.

Naive loop: ``model.generate`` per batch of 16 prompts with ``num_return_sequences=k``, fp32, stop at newline via
``stop_strings`` but finished rows stay in the batch until the whole batch is done (no early drop), prompts padded
to the batch's longest. rait: :class:`rait.generation.hf.HFBackend` (prefix-shared KV cache, early drop, length
buckets, the dtype ``auto`` picks: bf16 only where this CPU runs it fast). Both use the probe's prompt (the papers' 3-shot BASIC2 chat prompt), the same k,
temperature and max new tokens. Also checks that greedy outputs of the two paths are identical in fp32.

Usage::

    python bench/probe_speed.py [--n 64] [--k 10] [--max-new-tokens 32] [--out bench/results/probe_speed.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_line, machine, matmul_gflops, write_result  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "triviaqa" / "train.jsonl"


def naive_generate(model, tok, prompts, k, max_new_tokens, temperature, greedy=False, batch=16):
    """HF generate per batch; returns (answers, generated token count)."""
    answers, n_tokens = [], 0
    for i in range(0, len(prompts), batch):
        enc = tok(prompts[i: i + batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(
                **enc, do_sample=not greedy, temperature=None if greedy else temperature, top_p=None, top_k=None,
                num_return_sequences=1 if greedy else k, max_new_tokens=max_new_tokens,
                stop_strings=["\n"], tokenizer=tok, pad_token_id=tok.pad_token_id,
            )
        gen = out[:, enc["input_ids"].shape[1]:]
        for row in gen:
            ids = [t for t in row.tolist() if t != tok.pad_token_id]
            n_tokens += len(ids)
            text = tok.decode(ids, skip_special_tokens=True)
            answers.append(text.split("\n")[0].strip())
    return answers, n_tokens


def llama_cpp_generate(prompts, k, max_new_tokens, temperature, threads):
    """llama.cpp (``llama-cpp-python``) on the GGUF the default model ships in: k completions per prompt, same
    max tokens, temperature and newline stop; its KV cache reuses the shared prompt prefix between the k samples.
    Returns (answers, generated tokens, seconds) or raises ImportError when the package is absent."""
    import importlib.util

    from llama_cpp import Llama

    from rait.core.models import DEFAULT_GGUF, DEFAULT_PACKAGE

    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    gguf = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=threads, n_batch=512, verbose=False, seed=0)
    answers, n_tok = [], 0
    t = time.perf_counter()
    for p in prompts:
        for j in range(k):
            out = llm.create_completion(p, max_tokens=max_new_tokens, temperature=temperature, top_p=1.0, top_k=0,
                                        min_p=0.0, stop=["\n"], seed=j)
            answers.append(out["choices"][0]["text"].strip())
            n_tok += out["usage"]["completion_tokens"]
    return answers, n_tok, time.perf_counter() - t


def _llama_child(queue, prompts, args, threads) -> None:
    try:
        ans, n_tok, dt = llama_cpp_generate(prompts, args.k, args.max_new_tokens, args.temperature, threads)
        queue.put({"seconds": round(dt, 2), "answers_per_s": round(len(ans) / dt, 2),
                   "tokens_per_s": round(n_tok / dt, 1), "quant": "GGUF as shipped (Q4_1)"})
    except ImportError as e:
        queue.put({"error": f"llama-cpp-python not importable: {e}"})


def llama_cpp_isolated(prompts, args) -> dict:
    """:func:`llama_cpp_generate` in a child process, so that a crash of the native library (a segfault) is
    recorded as this peer's result instead of ending the benchmark."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_llama_child, args=(queue, prompts, args, torch.get_num_threads()))
    proc.start()
    proc.join()
    if not queue.empty():
        return queue.get()
    return {"error": f"llama-cpp-python crashed (exit code {proc.exitcode}) during generation"}


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=f"triviaqa:{DEFAULT_DATA}")
    ap.add_argument("--n", type=int, default=64, help="questions")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32, help="rait backend prompts per batch")
    ap.add_argument("--out", default=None)
    return ap.parse_args()


def main() -> int:
    args = _parse()

    from rait.core.models import load_model, resolve_dtype
    from rait.data import load
    from rait.stages.probe import ProbeConfig, oeqa_prompt

    items = load(args.data, limit=args.n)
    model32, tok = load_model(args.model, dtype="float32")
    pcfg = ProbeConfig(model=args.model, data=args.data)
    prompts = [oeqa_prompt(it, tok, pcfg) for it in items]
    result = {"machine": machine(), "n_questions": len(items), "k": args.k, "max_new_tokens": args.max_new_tokens,
              "temperature": args.temperature}
    dtype = resolve_dtype("auto")  # never a dtype this CPU emulates slowly (bf16 on AVX2-only CPUs)
    result["matmul_dtype"] = str(dtype).replace("torch.", "")
    result["matmul_gflops"] = round(matmul_gflops(dtype, n=1024), 1)
    print(cpu_line(), f"| auto dtype {result['matmul_dtype']}: {result['matmul_gflops']} GFLOP/s", flush=True)
    g_fast = _naive_fp32(args, model32, tok, prompts, result)
    del model32
    _rait_backend(args, dtype, prompts, g_fast, result)
    result["speedup_answers_per_s"] = round(result["rait_hf"]["answers_per_s"] / result["naive"]["answers_per_s"], 2)
    result["llama_cpp"] = llama_cpp_isolated(prompts, args)
    print(f"llama.cpp: {result['llama_cpp']}", flush=True)
    print(f"naive HF generate (fp32, batch 16 x k={args.k}): {result['naive']['answers_per_s']} answers/s, "
          f"{result['naive']['tokens_per_s']} tok/s")
    print(f"rait hf backend ({result['rait_hf']['dtype']}): {result['rait_hf']['answers_per_s']} answers/s, "
          f"{result['rait_hf']['tokens_per_s']} tok/s, {result['rait_hf']['roofline_fraction']:.1%} of the "
          f"{result['matmul_dtype']} matmul roofline ({result['matmul_gflops']} GFLOP/s)")
    print(f"speedup: {result['speedup_answers_per_s']}x; greedy identical (fp32): "
          f"{result['greedy_identical_fp32']}/{len(items)}")
    write_result(args.out, result)
    return 0


def _naive_fp32(args: argparse.Namespace, model32, tok, prompts: list[str], result: dict) -> list[str]:
    """Greedy equality in fp32 (naive HF generate vs rait backend), then the naive sampling timing; returns the
    rait backend's greedy fp32 answers."""
    from rait.generation.base import SamplingConfig
    from rait.generation.hf import HFBackend

    fast32 = HFBackend(model32, tok, batch_size=args.batch_size)
    g_naive, _ = naive_generate(model32, tok, prompts, 1, args.max_new_tokens, 1.0, greedy=True)
    g_fast = [o[0].text.strip() for o in fast32.generate(prompts, 1, SamplingConfig(temperature=0.0,
                                                                                    max_new_tokens=args.max_new_tokens))]
    result["greedy_identical_fp32"] = sum(a == b for a, b in zip(g_naive, g_fast))
    print(f"greedy identical (fp32): {result['greedy_identical_fp32']}/{len(prompts)}", flush=True)

    torch.manual_seed(0)
    t = time.perf_counter()
    answers, toks = naive_generate(model32, tok, prompts, args.k, args.max_new_tokens, args.temperature)
    dt = time.perf_counter() - t
    result["naive"] = {"seconds": round(dt, 2), "answers_per_s": round(len(answers) / dt, 2),
                       "tokens_per_s": round(toks / dt, 1)}
    print(f"naive: {result['naive']}", flush=True)
    return g_fast


def _rait_backend(args: argparse.Namespace, dtype, prompts: list[str], g_fast: list[str], result: dict) -> None:
    """rait's HF backend in the auto dtype: greedy agreement with fp32 (when not fp32), then the sampling timing."""
    from rait.core.models import load_model
    from rait.generation.base import SamplingConfig
    from rait.generation.hf import HFBackend

    model, tok = load_model(args.model, dtype=dtype)
    fast = HFBackend(model, tok, batch_size=args.batch_size)
    if dtype != torch.float32:  # is the fast dtype safe as the default? compare its greedy answers with fp32
        g_low = [o[0].text.strip() for o in fast.generate(prompts, 1, SamplingConfig(
            temperature=0.0, max_new_tokens=args.max_new_tokens))]
        result["greedy_identical_fp32_vs_" + str(dtype).replace("torch.", "")] = sum(
            a == b for a, b in zip(g_fast, g_low))
        print(f"greedy identical fp32 vs {dtype}: {sum(a == b for a, b in zip(g_fast, g_low))}/{len(prompts)}",
              flush=True)
    s = SamplingConfig(temperature=args.temperature, max_new_tokens=args.max_new_tokens, stop=["\n"])
    prefilled = fast.prefill_tokens
    t = time.perf_counter()
    outs = fast.generate(prompts, args.k, s, seed=0)
    dt = time.perf_counter() - t
    n_ans = sum(len(o) for o in outs)
    n_tok = sum(c.n_tokens for o in outs for c in o)
    prompt_tok = sum(len(tok.encode(p, add_special_tokens=False)) for p in prompts)
    run_tok = fast.prefill_tokens - prefilled  # the few-shot prefix the prompts share runs once per batch
    gflop_per_token = 2 * model.num_parameters() / 1e9
    tok_rate = n_tok / dt
    result["rait_hf"] = {
        "dtype": str(dtype).replace("torch.", ""), "seconds": round(dt, 2), "answers_per_s": round(n_ans / dt, 2),
        "tokens_per_s": round(tok_rate, 1), "mean_answer_tokens": round(n_tok / n_ans, 2),
        "prompt_tokens": prompt_tok, "prefill_tokens_run": run_tok,
        # work done: the prompt tokens the sampler ran (shared prefix once per batch, no padding) + generated ones
        "roofline_fraction": round((run_tok + n_tok) / dt * gflop_per_token / result["matmul_gflops"], 3),
        # every prompt counted in full, as a sampler without prefix sharing would run it
        "roofline_fraction_full_prompts": round((prompt_tok + n_tok) / dt * gflop_per_token
                                                / result["matmul_gflops"], 3),
    }


if __name__ == "__main__":
    sys.exit(main())
