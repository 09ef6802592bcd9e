"""Every shared real data set (../shared/data) loads cleanly with the counts of its README; skipped when absent."""

from __future__ import annotations

import pytest

from rait.data import load_with_report

COUNTS = [
    ("triviaqa", "triviaqa/train.jsonl", 8837),
    ("triviaqa", "triviaqa/dev.jsonl", 11313),
    ("nq", "nq/dev.jsonl", 3610),
    ("arc", "arc/ARC-Challenge-Test.jsonl", 1172),
    ("arc", "arc/ARC-Challenge-Dev.jsonl", 299),
    ("mmlu", "mmlu/dev", 285),
    ("mmlu", "mmlu/val", 1531),
    ("mmlu", "mmlu/test", 14042),
]


def load_shared(root, fmt, rel, **kw):
    items, report = load_with_report(f"{fmt}:{root / rel}", on_error="skip", **kw)
    assert report.n_skipped == 0, report.summary()
    return items


@pytest.mark.parametrize("fmt,rel,n", COUNTS, ids=[r for _, r, _ in COUNTS])
def test_counts(shared_data, fmt, rel, n):
    items = load_shared(shared_data, fmt, rel)
    assert len(items) == n
    assert len({i.id for i in items}) == n
    if fmt == "mmlu":
        assert len({i.topic for i in items}) == 57
        assert all(i.letters == "ABCD" for i in items)


def test_mmlu_root_defaults_to_test(shared_data):
    assert len(load_shared(shared_data, "mmlu", "mmlu")) == 14042


def test_triviaqa_fields(shared_data):
    items = {i.id: i for i in load_shared(shared_data, "triviaqa", "triviaqa/dev.jsonl")}
    q = items["tqa_dev_00023"]
    assert q.question == 'Who was the target of the failed "Bomb Plot" of 1944?'
    assert "Adolf Hitler" in q.answers and q.source == "triviaqa" and q.kind == "oeqa"
    assert not any('""' in i.question for i in items.values())
    train = load_shared(shared_data, "triviaqa", "triviaqa/train.jsonl")
    assert train[0].id == "tqa_train_00000" and "Helicopter" in train[0].answers
    assert not any('""' in a for i in train for a in i.answers)


def test_nq_fields(shared_data):
    items = load_shared(shared_data, "nq", "nq/dev.jsonl")
    assert items[0].id == "nq_dev_0" and items[0].question == "when was the last time anyone was on the moon"
    assert items[0].answers == ["14 December 1972 UTC", "December 1972"]
    assert not any("\u00a0" in a for i in items for a in i.answers)
    assert {i.id: i for i in items}["nq_dev_9"].answers == ["54 Mbit/s"]


def test_mmlu_fields(shared_data):
    items = load_shared(shared_data, "mmlu", "mmlu/val", limit=3)
    q = items[2]
    assert (q.id, q.topic, q.gold, q.source) == ("abstract_algebra/val/2", "abstract_algebra", "A", "mmlu")
    assert q.choices == ["True, True", "False, False", "True, False", "False, True"]
    assert q.question.startswith("Statement 1 | A permutation")


def test_arc_fields(shared_data):
    items = load_shared(shared_data, "arc", "arc/ARC-Challenge-Test.jsonl")
    first = items[0]
    assert first.id == "Mercury_7175875" and first.gold == "C" and first.topic == "STEM"
    assert first.gold_text == "Planetary days will become shorter."
    sizes = sorted({len(i.choices) for i in items})
    assert sizes == [3, 4, 5]
    assert all(i.gold in i.letters for i in items)
    assert sum(i.id == "Mercury_7175875" for i in items) == 1
    # the papers' cut to A-D: no ARC-c test answer lies beyond D, so all 1,172 items survive
    cut = load_shared(shared_data, "arc", "arc/ARC-Challenge-Test.jsonl", max_choices=4)
    assert len(cut) == 1172 and sorted({len(i.choices) for i in cut}) == [3, 4]
