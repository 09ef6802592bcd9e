"""Run the speed benchmarks one after another and write the speed section of ``docs/benchmarks.md`` from their
JSON results, with the CPU (model and instruction sets) they ran on. Every figure in the section comes from the
JSON files this run wrote.

* ``stages``: the demo's stages as ``rait run`` executes them (bench/stages.py, reduced sizes that grow with the
  measured matmul rate: 16 pool / 64 test items on an fp32 AVX2 CPU, where the whole run took 17.4 min with
  16 / 16 on 2026-12-02; 64 / 256 on an AMX CPU), the current code and the ``--baseline`` revision's code
  ("today") interleaved stage by stage.
* ``stages_tqa``: ``train:van:0`` of ``configs/triviaqa_nq.yaml`` (and the probe it needs) on 128 pool items, now
  vs today, when ``../shared/data`` is present: training on the benchmark's own rows, whose lengths vary.
* ``probe``: naive HF ``generate`` loop vs rait's sampler vs llama.cpp, the demo's probe settings, same questions.
* ``train``: rait's trainer vs the stock HF ``Trainer`` loss vs TRL ``SFTTrainer`` (padding-free), same rows.
* ``grads``: LESS-style batch-1 gradient loop vs rait's batched per-sample gradients.

Usage::

    python bench/run_all.py                 # all five (--threads 1, 2026-12-06: 8.1 and 12.5 min on a 2-core Sapphire
                                            # Rapids, 9.4 min on a 2-core AMD EPYC with AVX-512 bf16, 18.6 min
                                            # on a 2-core AMD EPYC with AVX2 only, fp32; 2026-12-07: 13.4 min
                                            # on a 2-core Ice Lake Xeon without bf16, fp32)
    python bench/run_all.py --only probe    # one of stages, stages_tqa, probe, grads, train
    python bench/run_all.py --render-only   # re-render docs from bench/results/*.json
    python bench/run_all.py --threads 1     # torch threads of every benchmark (default: torch's choice)

``--threads 1`` is the faster setting on a CPU shared with other busy processes: there, 2 OpenMP threads wait for
each other at every barrier, and a 64-row fp32 matmul ran 7x slower on 2 threads than on 1 (see
docs/probing.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
from _common import machine  # noqa: E402
from _doc import DOC, markers, write_section  # noqa: E402

from rait.methods import REFERENCE  # noqa: E402
from rait.methods._claims import VANILLA  # noqa: E402

#: the code before issue 17's work: the "today" column
BASELINE = "f27074c"
BENCHES = {
    "stages": ["stages.py", "--n", "auto", "--n-test", "0", "--baseline", BASELINE, "--out", str(RESULTS / "stages.json")],
    # training on the benchmark's own rows (TriviaQA: 46-133 tokens, so padding matters), when the data is here
    "stages_tqa": ["stages.py", "--config", str(HERE.parent / "configs" / "triviaqa_nq.yaml"), "--n", "128",
                   "--n-test", "16", "--stages", f"train:{VANILLA}:0", "--baseline", BASELINE,
                   "--out", str(RESULTS / "stages_tqa.json")],
    "probe": ["probe_speed.py", "--data", "builtin:facts/id", "--n", "12", "--k", "6", "--max-new-tokens", "16",
              "--temperature", "0.5", "--out", str(RESULTS / "probe_speed.json")],
    "grads": ["grads_speed.py", "--n", "16", "--dim", "512", "--out", str(RESULTS / "grads_speed.json")],
    "train": ["train_speed.py", "--steps", "2", "--batch-size", "8", "--variants", "weighted,hf,trl",
              "--json", str(RESULTS / "train_speed.json")],
}
START, END = markers("speed")
#: the TriviaQA training pool configs/triviaqa_nq.yaml reads (relative to the repository root, the working directory)
TQA_DATA = Path("../shared/data/triviaqa/train.jsonl")


def _load(name: str):
    p = RESULTS / name
    return json.loads(p.read_text()) if p.exists() else None


def _f(x, fmt="{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def stage_rows(st: dict | None, label: str = "") -> list[str]:
    """Rows of the stage table: now vs today per stage, with peak RSS and roofline share."""
    if not st:
        return []
    unit = {"probe": ("answers_per_s", "answers/s"), "eval": ("questions_per_s", "questions/s"),
            "train": ("samples_per_s", "samples/s"), "grads": ("samples_per_s", "samples/s")}
    rows = []
    for name, now in st["stages"].items():
        key, u = unit[now["kind"]]
        old = st.get("stages_today", {}).get(name, {})
        ratio = now[key] / old[key] if old.get(key) else None
        if now["kind"] == "train" and "token_count" not in now:  # results of a version that miscounted tokens
            now = {**now, "roofline_share": None}
        inner = now.get("inner_rate") / old["inner_rate"] if now.get("inner_rate") and old.get("inner_rate") else None
        rows.append(f"| {name}{label} ({now['kind']}, {now['items']} items) | {_f(old.get(key))} {u} | {_f(now[key])} {u} "
                    f"| **{_f(ratio)}×** | {_f(inner, '{:.2f}×')} | {now['seconds']:.0f} s / {_f(old.get('seconds'), '{:.0f}')} s "
                    f"| {now['peak_rss_mb'] / 1024:.2f} / {_f(old.get('peak_rss_mb') and old['peak_rss_mb'] / 1024)} GB "
                    f"| {_f(now.get('roofline_share'), '{:.1%}')} "
                    f"| {_f(now.get('train_loss'), '{:.4f}')} / {_f(old.get('train_loss'), '{:.4f}')} |")
    return rows


def peer_rows(probe, train, grads) -> list[str]:
    """Rows of the peer table (same model, questions / rows and settings within each block)."""
    rows = []
    if probe:
        q = f"probe sampling ({probe['n_questions']} q × k={probe['k']}, ≤{probe['max_new_tokens']} tok, T={probe['temperature']})"
        rows.append(f"| {q} | naive HF `generate` loop (fp32) | {probe['naive']['answers_per_s']} answers/s | 1.00× | |")
        r = probe["rait_hf"]
        rows.append(f"| {q} | rait `hf` sampler ({r['dtype']}) | {r['answers_per_s']} answers/s | "
                    f"{probe['speedup_answers_per_s']}× | {r['roofline_fraction']:.1%} of the {probe['matmul_dtype']} roofline"
                    + (f" (work done: the shared few-shot prefix once per batch; {r['roofline_fraction_full_prompts']:.1%}"
                       " counting every prompt in full)" if "roofline_fraction_full_prompts" in r else "") + " |")
        lc = probe.get("llama_cpp", {})
        if "answers_per_s" in lc:
            rows.append(f"| {q} | llama.cpp (`llama-cpp-python`, {lc['quant']}) | {lc['answers_per_s']} answers/s | "
                        f"{lc['answers_per_s'] / probe['naive']['answers_per_s']:.2f}× | one completion at a time "
                        "(llama-cpp-python's API), the prompt's KV cache reused between the k samples; built from the "
                        "sdist (no wheel on the registry) |")
        else:
            rows.append(f"| {q} | llama.cpp | not run: {lc.get('error', 'no result')} | | "
                        "`pip install llama-cpp-python` compiles llama.cpp from the sdist (the registry has no "
                        "wheel): on the Sapphire Rapids machine (2026-12-06, 0.3.36) the build with native CPU flags "
                        "crashed in its first completion (SIGSEGV, then SIGILL); built with "
                        "`CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF -DGGML_OPENMP=OFF\"` (3 min) "
                        "it runs; on the shared 2-core AVX2 machine (2026-12-02) the build had not finished after "
                        "30 min |")
    if train:
        by = {x["variant"]: x for x in train}
        base = by.get("hf", {}).get("samples_per_s")
        names = {"hf": "stock HF `Trainer` (full logits, padded)", "weighted": "rait weighted trainer",
                 "trl": "TRL `SFTTrainer` (completion-only, padding_free)"}
        for v, label in names.items():
            if v in by:
                rows.append(f"| LoRA SFT step (batch of {by[v].get('batch_size', '')} short QA rows) | {label} | "
                            f"{by[v]['samples_per_s']:.2f} samples/s | {_f(base and by[v]['samples_per_s'] / base)}× | |")
    if grads:
        g = f"per-sample LoRA gradients ({grads['n']} rows, {grads['lora_params']:,} dims → {grads['dim']})"
        rows.append(f"| {g} | LESS-style batch-1 loop + dense projection | {grads['loop_samples_per_s']:.2f} samples/s | 1.00× | |")
        rows.append(f"| {g} | rait batched hooks (batch {grads['batch_size']}) | {grads['batched_samples_per_s']:.2f} "
                    f"samples/s | **{grads['speedup']:.1f}×** | min cosine vs loop {grads['min_cosine']:.4f} |")
    return rows


def _ratio(st: dict | None, stage: str, key: str = "inner_rate") -> float | None:
    now, old = ((st or {}).get("stages", {}).get(stage, {}), (st or {}).get("stages_today", {}).get(stage, {}))
    return now[key] / old[key] if now.get(key) and old.get(key) else None


def target_rows(st, probe, grads, tqa=None) -> list[str]:
    """Issue 17's targets against this run's figures (what limits each and what was tried: docs/speed.md)."""
    def row(target: str, value: float | None, fmt: str, goal: float, how: str) -> str:
        met = "–" if value is None else ("**met**" if value >= goal else f"not met ({value / goal:.0%} of the target)")
        return f"| {target} | {'not measured' if value is None else fmt.format(value)} | {met} | {how} |"

    r = (probe or {}).get("rait_hf", {})
    lc = (probe or {}).get("llama_cpp", {})
    return [
        row("probe sampling ≥ 25 % of the matmul roofline", r.get("roofline_fraction"), "{:.1%}", 0.25,
            "peer table, rait `hf` sampler"),
        row("probe sampling ≥ llama.cpp answers/s", lc.get("answers_per_s") and r["answers_per_s"] / lc["answers_per_s"],
            "{:.2f}× llama.cpp", 1.0, "peer table (llama.cpp: " + ("ran" if "answers_per_s" in lc else "not run") + ")"),
        row("training ≥ 2× today's samples/s (demo rows)", _ratio(st, f"train:{VANILLA}:0"), "{:.2f}×", 2.0,
            "stage table, work ratio of `train`"),
        row("training ≥ 2× today's samples/s (TriviaQA rows)", _ratio(tqa, f"train:{VANILLA}:0"), "{:.2f}×", 2.0,
            "stage table, work ratio of `train` on TriviaQA rows" + ("" if tqa else " (data absent: not run)")),
        row("evaluation ≥ 2× today's questions/s", _ratio(st, f"eval:{REFERENCE}:0:id"), "{:.2f}×", 2.0,
            "stage table, work ratio of `eval`"),
        row("gradient features ≥ 20× the LESS-style loop", (grads or {}).get("speedup"), "{:.1f}×", 20.0,
            f"peer table (min cosine {(grads or {}).get('min_cosine', float('nan')):.4f}; target ≥ 0.99)"),
        # the last three are not part of this run (each takes 10 min to hours): what was measured separately
        "| peak memory of probing 2,000 questions ≤ 2.5 GB | not part of this run (a 2,000-question probe takes "
        "about 10 min); measured separately: 2.21 GB | met | [speed.md](speed.md#memory-of-probing-2000-questions), "
        "measured inside `rait run configs/triviaqa_nq.yaml` |",
        "| TriviaQA → NQ section re-run (`rait run configs/triviaqa_nq.yaml`) ≤ 30 min | not part of this run; "
        "measured separately: 50.6 min on a Sapphire Rapids (bf16), over 2 h (estimated from a partial run) on "
        "an Ice Lake Xeon (fp32) | not met (1.7× over with bf16) | [speed.md](speed.md#wall-times-a-user-feels) |",
        "| `make demo` ≤ 12 min on a clean clone, on either CPU kind | not part of this run; measured separately: "
        "9.0 min (Sapphire Rapids, bf16), 8.6 (EPYC, bf16), 18.2 (EPYC with AVX2 only, fp32), 15.8 (Ice Lake, "
        "fp32) | met with bf16, not met in fp32 (1.3–1.5× over) | [speed.md](speed.md#wall-times-a-user-feels), "
        "README |",
    ]


def render() -> str:
    """Markdown of the speed results found in bench/results/."""
    m = _load("machine.json") or machine()
    lines = [START, "## Speed (measured by `python bench/run_all.py`)", "",
             f"CPU: {m['cpu']} ({', '.join(m.get('isa', [])) or 'ISA not recorded'}"
             + (f"; kernels capped by `{m['isa_caps']}`" if m.get("isa_caps") else "") + f"), {m['cores']} cores, torch "
             f"{m['torch']} ({m['torch_threads']} threads), GPU: {m['gpu'] or 'none'}; measured {m['date']}"
             + (f"; the whole run took {m['wall_min']:.1f} min" if m.get("wall_min") else "") + ". "
             "The machine is shared: absolute rates vary with other load; the ratios compare runs made back to back.",
             ""]
    st, tqa = _load("stages.json"), _load("stages_tqa.json")
    if st:
        lines += [f"### Demo stages as `rait run` executes them (`configs/demo.yaml`, {st['n']} pool items, "
                  f"{st.get('n_test', st['n'])} test items, "
                  f"dtype `auto` = {st['dtype']}, {st['dtype']} matmul {st['matmul_gflops']} GFLOP/s)", "",
                  f"\"today\" = the code at {st.get('baseline', '–')}, run right after the current code on each stage. "
                  "Stage wall time includes model loading, the certainty embedder and saving, as a user waits for it. "
                  "Roofline share: 2·N FLOP per prompt + generated token (probe; prompts sharing a few-shot prefix run it "
                  "once per batch, so this share of useful work can pass 100 %), 4·N per trained token (train), "
                  "N = model parameters, over the measured matmul rate. Each stage ran once per version at these small "
                  "sizes, where fixed costs (model load, certainty embedder, saving) are a large part of the wall "
                  "time; \"work ratio\" compares the rate of the stage's own work where the stage records it "
                  "(eval: questions per second of generation; train: samples/s inside the trainer). Training loss: the "
                  "mean loss over the run's optimizer steps (its manifest). `train:van` trains both versions on the "
                  "same rows with the same seed, so its two losses must agree within bf16 rounding; the rehearsal "
                  "rows are chosen from each version's own probe, so its losses differ with the rows."
                  + (f" The rows \"on TriviaQA rows\" are `train:{VANILLA}:0` of `configs/triviaqa_nq.yaml` and the "
                     f"probe it needs, with {tqa['n']} pool items (3-shot prompts, k = 10; {tqa['n'] // 2} training rows "
                     "of TriviaQA questions, 46–133 tokens, so random batches of 16 carry about 30 % padding)."
                     if tqa else ""), "",
                  "| stage | today | now | ratio | work ratio | wall now / today | peak RSS now / today | roofline share "
                  "| training loss now / today |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |", *stage_rows(st), *stage_rows(tqa, " on TriviaQA rows"), ""]
    probe, train, grads = _load("probe_speed.json"), _load("train_speed.json"), _load("grads_speed.json")
    if probe or train or grads:
        lines += ["### Peers, side by side (same model, items and settings within a block)", "",
                  "| work | implementation | rate | vs first row | notes |", "| --- | --- | --- | --- | --- |",
                  *peer_rows(probe, train, grads), ""]
    lines += ["### Targets (issue 17)", "",
              "Each figure is from this run. What limits each one (profiles) and what was tried: "
              "[speed.md](speed.md).", "",
              "| target | this run | status | where |", "| --- | --- | --- | --- |",
              *target_rows(st, probe, grads, _load("stages_tqa.json")), "", END]
    return "\n".join(lines)


def write_doc() -> None:
    """Insert or replace the speed section of docs/benchmarks.md."""
    write_section("speed", render())
    print(f"wrote {DOC}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(BENCHES), action="append")
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of every benchmark")
    args = ap.parse_args()
    import os

    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        t0 = time.time()
        info = machine()
        if args.threads:
            info["torch_threads"] = args.threads
        for name in args.only or list(BENCHES):
            if name == "stages_tqa" and not TQA_DATA.exists():
                print(f"skipping {name}: {TQA_DATA} is absent (see ../shared/data/README.md)", flush=True)
                (RESULTS / "stages_tqa.json").unlink(missing_ok=True)  # no figure from an earlier run
                continue
            cmd = [sys.executable, str(HERE / BENCHES[name][0]), *BENCHES[name][1:]]
            print("$", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
        info["wall_min"] = (time.time() - t0) / 60
        (RESULTS / "machine.json").write_text(json.dumps(info, indent=2) + "\n")
    write_doc()
    return 0


if __name__ == "__main__":
    sys.exit(main())
