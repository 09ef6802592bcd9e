"""Progress bars move per batch / step, logging goes around the bars, -v/-q control it (rait.core.progress)."""

import logging
import warnings

import pytest

from rait.core.progress import StageClock, bar, setup_logging, track_batches


class Rec:
    """A stand-in bar that records every update."""

    def __init__(self):
        self.updates, self.n = [], 0

    def update(self, k):
        self.updates.append(k)
        self.n += k

    def set_postfix_str(self, *a, **k):
        pass


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from rait.generation.hf import HFBackend

    return HFBackend.from_spec(str(tiny_model_dir), dtype="float32", device="cpu", batch_size=3)


def test_generation_bar_moves_per_batch(backend):
    from rait.generation.base import SamplingConfig

    prompts = [f"Question {i}?" * (1 + i % 3) for i in range(10)]
    b = Rec()
    with track_batches(backend.model, b, len(prompts)):
        backend.generate(prompts, n=2, sampling=SamplingConfig(max_new_tokens=3), seed=0)
    assert b.n == 10 and len(b.updates) == 4 and max(b.updates) == 3  # 3+3+3+1 prompts, one update per batch
    b = Rec()
    with track_batches(backend.model, b, 4):
        backend.next_token_probs([f"Which option, {i}?" for i in range(4)], ["A", "B"])
    assert b.updates == [3, 1]


def test_track_batches_without_a_torch_model_credits_at_the_end():
    b = Rec()
    with track_batches(None, b, 7):
        pass
    assert b.updates == [7]


def test_bar_shows_rate_and_eta(capsys):
    with bar(total=4, desc="probe", unit="q") as b:
        b.update(2)
        b.refresh()
    err = capsys.readouterr().err
    assert "probe" in err and "q/s" in err and "<" in err  # tqdm: elapsed<remaining, rate


def test_logging_goes_through_tqdm_and_q_v_control_it(capsys):
    log = logging.getLogger("rait.test")
    restore = setup_logging(0)
    try:
        with bar(total=2, desc="x") as b:
            log.info("hello from a stage")
            log.debug("hidden detail")
            warnings.warn("a library warning", UserWarning)
            b.update(2)
    finally:
        restore()
    first = capsys.readouterr()
    err = first.out + first.err
    restore = setup_logging(-1)
    try:
        log.info("quiet info")
        log.warning("quiet warning")
        with bar(total=2, desc="hidden-bar") as b:
            b.update(2)
    finally:
        restore()
    q = capsys.readouterr()
    restore = setup_logging(1)
    try:
        log.debug("debug detail")
    finally:
        restore()
    v = capsys.readouterr()
    assert "hello from a stage" in err and "a library warning" in err and "hidden detail" not in err
    assert "quiet info" not in q.out + q.err and "quiet warning" in q.out + q.err and "hidden-bar" not in q.err
    assert "debug detail" in v.out + v.err


def test_stage_clock_estimates_from_finished_stages():
    t = iter([0.0, 0.0, 1.0, 31.0, 61.0])
    c = StageClock(5, now=lambda: next(t))
    assert c.start("data") == "[1/5] data (elapsed 0s)"
    assert c.start("probe_m0") == "[2/5] probe_m0 (elapsed 1s)"  # one quick stage: no estimate yet
    assert c.start("train") == "[3/5] train (elapsed 31s, about 46s left)"  # (1 + 30) / 2 x 3 stages
    assert c.start("eval") == "[4/5] eval (elapsed 1m01s, about 41s left)"


def test_transformers_own_log_goes_around_the_bar(capsys):
    from transformers.utils import logging as hf_logging

    restore = setup_logging(0)
    try:
        with bar(total=1, desc="b") as b:
            hf_logging.get_logger("transformers.modeling_utils").warning("a transformers warning")
            b.update(1)
        assert hf_logging.get_logger().handlers == [__import__("rait.core.progress").core.progress._handler]
    finally:
        restore()
    err = capsys.readouterr().err
    assert err.count("a transformers warning") == 1  # once, through tqdm.write, not also by transformers' handler
    assert hf_logging._default_handler in hf_logging.get_logger().handlers  # restored
