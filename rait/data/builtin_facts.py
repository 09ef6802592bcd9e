"""The built-in open-ended QA set ``builtin:facts``: short factual questions with alias answers.

The questions are generated, deterministically, from hand-written fact tables in
``rait/data/builtin/facts_tables.json`` (world capitals, continents, currencies, official languages, chemical
elements, literature, paintings, inventions and discoveries, astronomy, years of historical events, classical
music, US state capitals). Each table row yields one or two questions; the question template is picked by the
row's position, so the set mixes phrasings. Items whose answer would leak into the question ("What is the
capital of Luxembourg?") and reverse questions whose answer is a substring of another row's answer ("Niger" in
"Nigeria") are dropped, because the papers' substring scoring rule would mark an echo or a near miss correct.

The committed ``rait/data/builtin/facts.jsonl`` and ``facts_splits.json`` are the output of :func:`main`; a test
checks that regenerating them gives the same bytes. See ``docs/builtin_facts.md`` for counts and the default
model's accuracy per topic.

Example:
    >>> from rait.data.builtin_facts import generate, SPLITS
    >>> items = generate()
    >>> len(items) >= 1500
    True
    >>> q = next(i for i in items if i.id == "facts-capital-0001")
    >>> q.question, q.answers, q.topic, q.source
    ('What is the capital of Algeria?', ['Algiers'], 'world_capitals', 'builtin:facts')
    >>> sorted(SPLITS)
    ['id', 'ood']

Regenerate the package data with ``python -m rait.data.builtin_facts`` (prints counts per topic).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

from rait.data.schema import QAItem

SOURCE = "builtin:facts"
BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
TABLES_PATH = BUILTIN_DIR / "facts_tables.json"
JSONL_PATH = BUILTIN_DIR / "facts.jsonl"
SPLITS_PATH = BUILTIN_DIR / "facts_splits.json"

#: In-domain / out-of-domain topic groups for the demo (each topic in exactly one split; ~2/3 of items ID).
#: Both sides mix easy topics (continents, astronomy) with hard ones (currencies, atomic numbers).
SPLITS: dict[str, list[str]] = {
    "id": ["world_capitals", "capital_countries", "country_continents", "currencies", "element_symbols",
           "literature", "historical_years"],
    "ood": ["official_languages", "atomic_numbers", "paintings", "inventions_discoveries", "astronomy",
            "classical_music", "us_state_capitals"],
}

# Question templates per topic; row i of a table uses template i % len(templates).
T_CAPITAL = ("What is the capital of {c}?", "What is the capital city of {c}?", "Which city is the capital of {c}?")
T_CAPITAL_REV = ("Which country has {x} as its capital?", "{x} is the capital of which country?")
T_CONTINENT = ("Which continent is {c} in?", "On which continent is {c} located?", "In which continent does {c} lie?")
T_CURRENCY = ("What is the currency of {c}?", "What is the official currency of {c}?", "Which currency is used in {c}?")
T_LANGUAGE = ("What is an official language of {c}?", "Name an official language of {c}.",
              "Which language is an official language of {c}?")
T_SYMBOL = ("Which chemical element has the symbol {x}?", "The chemical symbol {x} stands for which element?",
            "Which element is represented by the chemical symbol {x}?")
T_ATOMIC = ("Which chemical element has atomic number {x}?", "What element has the atomic number {x}?",
            "Which element has {x} protons in its nucleus?")
T_AUTHOR = ("Who wrote the {k} {x}?", "Who is the author of the {k} {x}?", "Which writer wrote the {k} {x}?")
T_PAINTING = ("Who painted {x}?", "Which artist painted {x}?", "Which painter created {x}?")
T_DISCOVERY = ("Who {v} {x}?", "Which person {v} {x}?")
T_MOON = ("Which planet does the moon {x} orbit?", "{x} is a moon of which planet?")
T_MOON_DWARF = ("Which dwarf planet does the moon {x} orbit?", "{x} is a moon of which dwarf planet?")
T_YEAR = ("In what year {x}?", "In which year {x}?")
T_MUSIC = ("Who composed {x}?", "Which composer wrote {x}?")
T_STATE = ("What is the capital of the US state of {x}?", "Which city is the capital of the US state of {x}?")
T_STATE_REV = ("{x} is the capital of which US state?", "Which US state has {x} as its capital?")


def split_aliases(field: str) -> list[str]:
    """``"the Bahamas|Bahamas"`` -> ``["Bahamas"]``: split on ``|``, drop a leading "the ", dedupe in order.

    Args:
        field: one table cell; ``""`` gives ``[]``.
    """
    out: list[str] = []
    for a in field.split("|"):
        a = a.strip()
        if a[:4].lower() == "the " and a[4:5].isupper():
            a = a[4:]
        if a and a.lower() not in {x.lower() for x in out}:
            out.append(a)
    return out


def display(field: str) -> str:
    """The first alias of a cell as written (keeps "the" for question text: "the Bahamas")."""
    return field.split("|")[0].strip()


def load_tables(path: Path | str = TABLES_PATH) -> dict[str, Any]:
    """The fact tables (a dict of ``{"columns": [...], "rows": [[...], ...]}``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


class _Builder:
    """Collects items, numbering ids per key and counting what is dropped and why."""

    def __init__(self) -> None:
        self.items: list[QAItem] = []
        self.counters: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.seen: set[str] = set()

    def add(self, key: str, topic: str, question: str, answers: list[str], exclusive: Iterable[str] = ()) -> None:
        """Add one item unless its answer leaks into the question or collides with a sibling answer.

        Args:
            key: short id key (``facts-<key>-NNNN``).
            topic: the item's topic.
            question: question text.
            answers: aliases, canonical first.
            exclusive: aliases of the *other* rows of a closed answer set; if one of ours is a substring of
                one of theirs, the item is dropped (a wrong answer would score as correct).
        """
        q = question[0].upper() + question[1:]
        ql, exclusive = q.lower(), [o.lower() for o in exclusive]
        if any(a.lower() in ql for a in answers):
            self.dropped[f"{topic}: answer in question"] += 1
            return
        if any(a.lower() in o for a in answers for o in exclusive):
            self.dropped[f"{topic}: answer inside another answer"] += 1
            return
        if ql in self.seen:
            self.dropped[f"{topic}: duplicate question"] += 1
            return
        self.seen.add(ql)
        self.counters[key] += 1
        self.items.append(QAItem(id=f"facts-{key}-{self.counters[key]:04d}", question=q, answers=list(answers),
                                 topic=topic, source=SOURCE))


def _others(all_aliases: list[list[str]], i: int) -> Iterator[str]:
    return (a for j, al in enumerate(all_aliases) if j != i for a in al)


def _countries(b: _Builder, rows: list[list[str]]) -> None:
    names = [split_aliases(r[0]) for r in rows]
    per_topic = (("capital", "world_capitals", 1, T_CAPITAL), ("continent", "country_continents", 2, T_CONTINENT),
                 ("currency", "currencies", 3, T_CURRENCY), ("language", "official_languages", 4, T_LANGUAGE))
    for key, topic, col, templates in per_topic:
        for i, r in enumerate(rows):
            if r[col]:
                b.add(key, topic, templates[i % len(templates)].format(c=display(r[0])), split_aliases(r[col]))
        if key == "capital":  # reverse direction right after, as its own topic
            for i, r in enumerate(rows):
                q = T_CAPITAL_REV[i % 2].format(x=display(r[1]))
                b.add("capcountry", "capital_countries", q, names[i], exclusive=_others(names, i))


def _elements(b: _Builder, rows: list[list[Any]]) -> None:
    for i, (_, sym, name) in enumerate(rows):
        b.add("symbol", "element_symbols", T_SYMBOL[i % 3].format(x=sym), split_aliases(name))
    for i, (num, _, name) in enumerate(rows):
        b.add("atomic", "atomic_numbers", T_ATOMIC[i % 3].format(x=num), split_aliases(name))


def generate(tables: dict[str, Any] | None = None) -> list[QAItem]:
    """All items of ``builtin:facts``, in a fixed order with stable ids (``facts-capital-0001``, ...).

    Args:
        tables: fact tables as returned by :func:`load_tables` (default: the packaged ones).
    """
    return _build(tables).items


def _build(tables: dict[str, Any] | None = None) -> _Builder:
    t = load_tables() if tables is None else tables
    b = _Builder()
    _countries(b, t["countries"]["rows"])
    _elements(b, t["elements"]["rows"])
    for i, (kind, title, author) in enumerate(t["works"]["rows"]):
        b.add("author", "literature", T_AUTHOR[i % 3].format(k=kind, x=title), split_aliases(author))
    for i, (title, artist) in enumerate(t["paintings"]["rows"]):
        b.add("painting", "paintings", T_PAINTING[i % 3].format(x=title), split_aliases(artist))
    for i, (verb, thing, person) in enumerate(t["discoveries"]["rows"]):
        b.add("discovery", "inventions_discoveries", T_DISCOVERY[i % 2].format(v=verb, x=thing),
              split_aliases(person))
    for i, (moon, planet) in enumerate(t["moons"]["rows"]):
        templates = T_MOON_DWARF if planet == "Pluto" else T_MOON
        b.add("astronomy", "astronomy", templates[i % 2].format(x=moon), split_aliases(planet))
    for question, answer in t["astronomy"]["rows"]:
        b.add("astronomy", "astronomy", question, split_aliases(answer))
    for i, (clause, year) in enumerate(t["events"]["rows"]):
        b.add("year", "historical_years", T_YEAR[i % 2].format(x=clause), [str(year)])
    for i, (work, composer) in enumerate(t["music"]["rows"]):
        b.add("composer", "classical_music", T_MUSIC[i % 2].format(x=work), split_aliases(composer))
    states = [split_aliases(r[0]) for r in t["us_states"]["rows"]]
    for i, (state, capital) in enumerate(t["us_states"]["rows"]):
        b.add("usstate", "us_state_capitals", T_STATE[i % 2].format(x=state), split_aliases(capital))
    for i, (state, capital) in enumerate(t["us_states"]["rows"]):
        b.add("usstate", "us_state_capitals", T_STATE_REV[i % 2].format(x=display(capital)), states[i],
              exclusive=_others(states, i))
    return b


def to_jsonl(items: Iterable[QAItem]) -> str:
    """The JSONL text of items (one ``QAItem.to_dict()`` per line, UTF-8, no ASCII escaping)."""
    return "".join(json.dumps(it.to_dict(), ensure_ascii=False) + "\n" for it in items)


def splits_json() -> str:
    """The text of ``facts_splits.json``."""
    return json.dumps(SPLITS, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Regenerate ``facts.jsonl`` and ``facts_splits.json`` next to the tables; print counts per topic."""
    b = _build()
    write_set(b.items, b.dropped, SPLITS, JSONL_PATH, SPLITS_PATH)
    return 0


def write_set(items: list[QAItem], dropped: Counter, splits: dict[str, list[str]], jsonl: Path,
              splits_path: Path) -> None:
    """Write a built-in set's JSONL and splits file; print counts per split and topic, and what was dropped.

    Raises:
        SystemExit: the splits and the generated topics disagree.
    """
    topics = Counter(it.topic for it in items)
    missing = set(topics) ^ {tp for v in splits.values() for tp in v}
    if missing:
        raise SystemExit(f"the splits and the generated topics disagree on: {sorted(missing)}")
    jsonl.write_text(to_jsonl(items), encoding="utf-8")
    splits_path.write_text(json.dumps(splits, indent=2) + "\n", encoding="utf-8")
    for name, tps in splits.items():
        print(f"[{name}] {sum(topics[tp] for tp in tps)} items: " + ", ".join(f"{tp}={topics[tp]}" for tp in tps))
    print(f"total {len(items)} items in {len(topics)} topics -> {jsonl}")
    for reason, n in sorted(dropped.items()):
        print(f"  dropped {n}: {reason}")


if __name__ == "__main__":
    raise SystemExit(main())
