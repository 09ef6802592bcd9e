"""Golden tests: CorCer-RAIT and CRaFT on the hand-made tables, default and as_released.

Hand-computed rankings (tests/methods/__init__.py):
  OEQA van by certainty desc: o00 o21 (.95) | o01 o03 o05 (.80) | o16 o19 o02 o04
  OEQA idk by certainty asc:  o12 (.05) o08 o09 (.10) o18 o10 o07 o13 o14 o15 o11 o20
  MCQA van by −H desc: m13 m00 m08 m02 m18 | m01 m04 m10 (−0.5) | m15 m20
  MCQA idk by −H asc:  m09 m16 | m05 m06 (−1.3) | m19 | m03 m14 (−1.2) | m11 m07 m12 m17
"""

import pytest

from rait.errors import DataError
from rait.methods.corcer import CorCerConfig
from rait.methods.corcer import build as corcer
from rait.methods.craft import CraftConfig
from rait.methods.craft import build as craft
from tests.methods import ids, table


# ------------------------------------------------------------------------------------------------- corcer
def test_corcer_oeqa_ties_by_table_order():
    rows, s = corcer(table("oeqa"), CorCerConfig(n_van=4, n_idk=3))
    assert ids(rows, "van") == ["o00", "o01", "o03", "o21"]  # o05 ties o03 at .80 but comes later
    assert ids(rows, "idk") == ["o08", "o09", "o12"]
    assert s["dropped"] == {"middle_band": 2, "over_quota": 5 + 8}
    d = s["decisions"]
    assert d["o05"]["rank"] == 5 and d["o05"]["reason"].startswith("dropped: over_quota")
    assert d["o12"]["rank"] == 1 and d["o12"]["label"] == "idk"


def test_corcer_oeqa_as_released_same_selection():  # TriviaQA: sort + head, no keep='all', no resampling
    rows, s = corcer(table("oeqa"), CorCerConfig(n_van=4, n_idk=3, as_released=True))
    assert ids(rows, "van") == ["o00", "o01", "o03", "o21"] and ids(rows, "idk") == ["o08", "o09", "o12"]


def test_corcer_mcqa_default_and_keep_all_ties():
    rows, s = corcer(table("mcqa"), CorCerConfig(n_van=6, n_idk=3))
    assert ids(rows, "van") == ["m00", "m01", "m02", "m08", "m13", "m18"]  # m04, m10 tie m01 at -0.5
    assert ids(rows, "idk") == ["m05", "m09", "m16"]  # m06 ties m05 at -1.3
    rows, s = corcer(table("mcqa"), CorCerConfig(n_van=6, n_idk=3, as_released=True))  # keep='all'
    assert ids(rows, "van") == ["m00", "m01", "m02", "m04", "m08", "m10", "m13", "m18"]
    assert ids(rows, "idk") == ["m05", "m06", "m09", "m16"]
    assert s["ties_kept"] == {"van": 2, "idk": 1}
    assert "tied at quota 3" in s["decisions"]["m06"]["reason"]


def test_corcer_pool_too_small():
    rows, s = corcer(table("mcqa"), CorCerConfig(n_van=12, n_idk=2))
    assert len(ids(rows, "van")) == 10 and s["shortfall"]["van"] == 2  # default: take all, record shortfall
    rows, s = corcer(table("mcqa"), CorCerConfig(n_van=12, n_idk=2, as_released=True))  # MMLU: resample
    assert s["counts"]["van"] == 12 and s["with_replacement"]["van"] and s["shortfall"]["van"] == 0
    assert set(ids(rows, "van")) <= {"m00", "m01", "m02", "m04", "m08", "m10", "m13", "m15", "m18", "m20"}


def test_corcer_missing_certainty():
    t = table("oeqa")
    del t[3]["certainty"]
    with pytest.raises(DataError, match="'corcer' needs column 'certainty'.*'o03'"):
        corcer(t, CorCerConfig(n_total=5))


# -------------------------------------------------------------------------------------------------- craft
def test_craft_oeqa_default_drops_positive_flow():
    rows, s = craft(table("oeqa", rehearsed=True), CraftConfig(n_van=4, n_idk=3))
    assert ids(rows, "van") == ["o00", "o01", "o03", "o21"]  # van pool untouched by flow (o01 has Δ = -0.9)
    # idk kept (Δ <= 0): o08 .10, o10 .15, o07 .20, o13 .25, o14 .30, o15 .35, o11 .40, o20 .45
    assert ids(rows, "idk") == ["o07", "o08", "o10"]  # o12/o09 (Δ>0) dropped despite lower certainty
    assert s["dropped"] == {"flow_positive": 3, "middle_band": 2, "over_quota": 5 + 5}
    assert s["pools"] == {"van": 9, "idk": 8, "idk_before_flow": 11}
    d = s["decisions"]
    assert d["o09"]["reason"].startswith("dropped: flow_positive") and d["o09"]["flow"] == pytest.approx(0.2)
    assert d["o08"]["flow"] == 0 and d["o08"]["label"] == "idk"  # Δ = 0 kept


def test_craft_oeqa_as_released_strict_and_misaligned():
    t = table("oeqa", rehearsed=True)
    # strict Δ < 0 with correct alignment: keeps o07 o10 o13 o15 o20 -> lowest certainty o10 o07 o13
    rows, s = craft(t, CraftConfig(n_van=4, n_idk=3, as_released=True, misaligned_flow=False))
    assert ids(rows, "idk") == ["o07", "o10", "o13"]
    assert s["dropped"]["flow_not_negative"] == 6  # Δ = 0 (o08 o11 o14) and Δ > 0 (o09 o12 o18)
    # full as_released: rows 0-9 read o00's rehearsal cor (1.0), rows 10-19 o01's (0.0), rows 20-21 o02's (0.6)
    rows, s = craft(t, CraftConfig(n_van=4, n_idk=3, as_released=True))
    assert s["misaligned_flow"] is True
    # kept: o10 o11 o12 o13 o15 o18 (Δ = -cor < 0); o14 (Δ = 0), o07-o09, o20 dropped
    assert ids(rows, "idk") == ["o10", "o12", "o18"]
    assert s["decisions"]["o12"]["flow_rehearsed_from"] == "o01"
    assert s["dropped"]["flow_not_negative"] == 5


def test_craft_idk_keep_flow_explicit():
    rows, _ = craft(table("oeqa", rehearsed=True), CraftConfig(n_van=1, n_idk=3, idk_keep_flow="<0"))
    assert ids(rows, "idk") == ["o07", "o10", "o13"]


def test_craft_mcqa_default_and_as_released():
    t = table("mcqa", rehearsed=True)
    rows, s = craft(t, CraftConfig(n_van=6, n_idk=3))
    # idk kept (Δ <= 0): m09 -1.38, m05 -1.3, m19 -1.25, m03 -1.2, m14 -1.2, m11, m07, m17
    assert ids(rows, "idk") == ["m05", "m09", "m19"]  # m16 / m06 (Δ>0) skipped
    assert ids(rows, "van") == ["m00", "m01", "m02", "m08", "m13", "m18"]
    assert s["dropped"]["flow_positive"] == 3
    rows, s = craft(t, CraftConfig(n_van=6, n_idk=4, as_released=True))  # Δ<=0 (MCQA), keep='all'
    assert ids(rows, "idk") == ["m03", "m05", "m09", "m14", "m19"]  # m14 ties m03 at -1.2
    assert s["misaligned_flow"] is False and s["ties_kept"] == {"van": 2, "idk": 1}


def test_craft_pool_too_small():
    t = table("mcqa", rehearsed=True)
    rows, s = craft(t, CraftConfig(n_van=2, n_idk=10))
    assert s["counts"]["idk"] == 8 and s["shortfall"]["idk"] == 2
    rows, s = craft(t, CraftConfig(n_van=2, n_idk=10, as_released=True))
    assert s["counts"]["idk"] == 10 and s["with_replacement"]["idk"]
    assert set(ids(rows, "idk")) <= {"m03", "m05", "m07", "m09", "m11", "m14", "m17", "m19"}
    rows, s = craft(table("oeqa", rehearsed=True), CraftConfig(n_van=2, n_idk=10, as_released=True))
    assert s["counts"]["idk"] == 6 and s["shortfall"]["idk"] == 4  # OEQA: no resampling


def test_craft_certainty_flow_filter():
    t = table("oeqa", rehearsed=True)
    for r in t:
        r["certainty_rehearsed"] = r["certainty"]
    t[10]["certainty_rehearsed"] = 0.9  # o10: Δcertainty +0.75
    rows, s = craft(t, CraftConfig(n_van=1, n_idk=3, max_certainty_flow=0.5))
    assert ids(rows, "idk") == ["o07", "o08", "o13"] and s["dropped"]["certainty_flow"] == 1


def test_craft_needs_rehearsed_columns():
    with pytest.raises(DataError, match="correctness_rehearsed.*--rehearsed-table"):
        craft(table("oeqa"), CraftConfig(n_total=5))
