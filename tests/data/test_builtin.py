"""The built-in QA set ``builtin:facts``: size, ids, aliases, splits, and that the committed files regenerate."""

import json
import re
from collections import Counter

import pytest

from rait.data import load
from rait.data.builtin_facts import (
    JSONL_PATH,
    SOURCE,
    SPLITS,
    SPLITS_PATH,
    _build,
    generate,
    split_aliases,
    splits_json,
    to_jsonl,
)
from rait.data.schema import QAItem


@pytest.fixture(scope="module")
def items():
    return [QAItem.from_dict(json.loads(line)) for line in JSONL_PATH.read_text(encoding="utf-8").splitlines()]


def test_size_and_topics(items):
    topics = Counter(it.topic for it in items)
    assert len(items) >= 1500
    assert len(topics) >= 6
    assert min(topics.values()) >= 50, topics


def test_ids_unique_and_stable_format(items):
    ids = [it.id for it in items]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"facts-[a-z]+-\d{4}", i) for i in ids)
    assert ids[0] == "facts-capital-0001"


def test_items_are_oeqa_with_clean_aliases(items):
    for it in items:
        assert it.kind == "oeqa" and it.source == SOURCE and it.topic
        assert it.question.strip() and it.question[0].isupper()
        assert it.answers and all(a.strip() == a and a for a in it.answers), it
        assert len({a.lower() for a in it.answers}) == len(it.answers), it  # no duplicate aliases
        # the papers' substring rule must not be satisfiable by echoing the question
        assert not any(a.lower() in it.question.lower() for a in it.answers), it
    assert len({it.question.lower() for it in items}) == len(items)


def test_short_aliases_are_rare(items):
    # 1-2 character aliases would match almost any output under the substring rule
    assert not [a for it in items for a in it.answers if len(a) < 3]


def test_splits_cover_every_topic_once(items):
    topics = {it.topic for it in items}
    listed = [tp for tps in SPLITS.values() for tp in tps]
    assert sorted(SPLITS) == ["id", "ood"]
    assert len(listed) == len(set(listed))
    assert set(listed) == topics
    n_id = sum(it.topic in SPLITS["id"] for it in items)
    assert 0.55 <= n_id / len(items) <= 0.75


def test_committed_files_match_the_generator():
    assert JSONL_PATH.read_text(encoding="utf-8") == to_jsonl(generate())
    assert json.loads(SPLITS_PATH.read_text(encoding="utf-8")) == SPLITS
    assert SPLITS_PATH.read_text(encoding="utf-8") == splits_json()


def test_generation_is_deterministic():
    assert to_jsonl(generate()) == to_jsonl(generate())


def test_leaky_and_ambiguous_items_are_dropped_and_counted():
    b = _build()
    assert b.dropped["world_capitals: answer in question"] >= 1  # e.g. Luxembourg -> Luxembourg
    assert b.dropped["capital_countries: answer inside another answer"] >= 1  # e.g. Niger vs Nigeria
    assert not any(it.answers == ["Niger"] for it in b.items if it.topic == "capital_countries")


def test_split_aliases():
    assert split_aliases("the Bahamas|Bahamas") == ["Bahamas"]
    assert split_aliases("the Milky Way|Milky Way") == ["Milky Way"]
    assert split_aliases("") == []


def test_loader_reads_the_set_and_its_splits(items):
    ood = load("builtin:facts/ood")
    assert len(load("builtin:facts")) == len(items)
    assert {it.topic for it in ood} == set(SPLITS["ood"])
    assert len(load("builtin:facts/id")) + len(ood) == len(items)
