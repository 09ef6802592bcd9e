"""Golden tests for rait.scoring (method-spec §A2, §A4)."""

import pytest

from rait.scoring import (
    cut_at,
    is_correct,
    is_refusal,
    normalize_answer,
    parse_option,
    score_mcqa,
    score_oeqa,
)


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("The Beatles", "beatles"),
        ("  A  tale of   two cities. ", "tale of two cities"),
        ("“Rock’n’Roll”!", "rocknroll"),
        ("U.S.A.", "usa"),
        ("ＰＡＲＩＳ", "paris"),  # NFKC folds full-width letters
        ("Theatre", "theatre"),  # 'the' only as a whole word
        ("", ""),
    ],
)
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_is_correct_contains_is_the_papers_substring_rule():
    assert is_correct("It was Harry Truman.", ["Harry Truman"])
    assert is_correct("  HARRY TRUMAN ", ["harry truman"])
    assert not is_correct("Truman, Harry", ["Harry Truman"])
    # no punctuation normalisation in the papers' rule
    assert not is_correct("U.S.A.", ["USA"])
    assert is_correct("U.S.A.", ["USA"], mode="contains_norm")
    # substring, so a longer wrong answer can contain a short alias
    assert is_correct("1984 or 1985", ["1984"])
    # an empty alias would match everything: ignored
    assert not is_correct("London", ["", "  "])
    assert not is_correct("London", ["Paris"])


def test_is_correct_exact_uses_first_line():
    assert is_correct("Paris.\nIt is the capital.", ["paris"], mode="exact")
    assert is_correct("\n  The Paris \n", ["Paris"], mode="exact")
    assert not is_correct("It is Paris", ["Paris"], mode="exact")
    assert not is_correct("", [""], mode="exact")


def test_is_correct_rejects_unknown_mode():
    with pytest.raises(ValueError, match="match mode"):
        is_correct("x", ["x"], mode="fuzzy")


@pytest.mark.parametrize(
    "text, strict, lenient",
    [
        ("I don't know", True, True),
        ("i don't know.", True, True),
        ("I don't know, maybe Paris", True, True),
        ("I don’t know", False, True),  # curly apostrophe: papers miss it
        ("I do not know the answer.", False, True),
        ("I dont know", False, True),
        ("I'm not sure.", False, True),
        ("I am not sure, perhaps Rome", False, True),
        ("Not sure", False, True),
        ("I cannot answer that question.", False, True),
        ("I can't answer this.", False, True),
        ("I have no idea.", False, True),
        ("Unknown", False, True),
        ("unknown.", False, True),
        ("I don't have enough information to answer.", False, True),
        # R-Tuning's phrases and what a model trained on them says
        ("The answer is unknown.", False, True),
        ("It is impossible to know.", False, True),
        ("It is difficult to predict.", False, True),
        ("There is much debate.", False, True),
        ("There is no concrete answer to this question.", False, True),
        ("There is no public information available.", False, True),
        ("There is no known answer.", False, True),
        ("There is no known scientific evidence.", False, True),
        ("There is no consensus.", False, True),
        # real answers must not be refusals
        ("Paris", False, False),
        ("Unknown Pleasures", False, False),
        ("The Unknown Soldier", False, False),
        ("The Known World", False, False),
        ("Knowing Me, Knowing You", False, False),
        ("Don't Know Why", False, False),
        ("Sure Thing", False, False),
        ("Idaho", False, False),
        ("Dr. No", False, False),
        ("Notre Dame", False, False),
        ("Ideas of North", False, False),
        ("I Know What You Did Last Summer", False, False),
        ("There is no place like home", False, False),
        ("It is unknown who wrote it, but probably Homer", False, False),
        ("There is no answer key; the capital is Paris.", False, False),
        ("The answer is Paris.", False, False),
        ("", False, False),
    ],
)
def test_is_refusal(text, strict, lenient):
    assert is_refusal(text, mode="strict") is strict
    assert is_refusal(text, mode="lenient") is lenient
    assert is_refusal(text) is lenient  # lenient is the default


def test_is_refusal_rejects_unknown_mode():
    with pytest.raises(ValueError, match="refusal mode"):
        is_refusal("x", mode="loose")


@pytest.mark.parametrize(
    "text, letter",
    [
        ("B", "B"),
        ("B. 4", "B"),
        ("The answer is (C).", "C"),
        ("the correct answer is: D", "D"),
        ("Answer: C", "C"),
        ("I think it is D", "D"),
        ("Option B is right", "B"),
        ("(A)", "A"),
        ("ABC News", "A"),  # last-resort fallback: first option letter anywhere
        ("none of them", None),
        ("", None),
        # opencompass quirks kept on purpose:
        ("The answer is B, not A.", "A"),  # the "X. at the end" pattern is tried first
        ("The answer is Beethoven", "B"),  # 'answer is X' matches the first letter of a word
    ],
)
def test_parse_option_golden(text, letter):
    assert parse_option(text) == letter


def test_parse_option_switches():
    assert parse_option("ABC News", lenient=False) is None
    assert parse_option("(B)", lenient=False) is None
    assert parse_option("Option B is right", lenient=False) == "B"
    assert parse_option("B: Paris") == "B"  # cushion 'X:' pattern
    assert parse_option("B: Paris", cushion=False) is None
    assert parse_option("The answer is E", letters="ABCDE") == "E"
    assert parse_option("The answer is E") is None


def test_cut_at():
    assert cut_at("Paris\nAnswer the following question", "answer the FOLLOWING") == "Paris\n"
    assert cut_at("Paris", "zzz") == "Paris"
    assert cut_at("Paris", None) == "Paris"


def test_score_oeqa_order_and_modes():
    assert score_oeqa("I don't know, maybe Paris", ["Paris"]) == "refuse"  # refusal checked first
    assert score_oeqa("Paris", ["Paris"]) == "correct"
    assert score_oeqa("London", ["Paris"]) == "wrong"
    assert score_oeqa("", ["Paris"]) == "wrong"
    assert score_oeqa("I don’t know", ["Paris"], refusal_mode="strict") == "wrong"
    assert score_oeqa("I don’t know", ["Paris"], refusal_mode="lenient") == "refuse"
    assert score_oeqa("U.S.A.", ["USA"]) == "wrong"
    assert score_oeqa("U.S.A.", ["USA"], match_mode="contains_norm") == "correct"


def test_score_oeqa_splitter():
    out = "London answer the following question: Paris"
    assert score_oeqa(out, ["Paris"]) == "correct"
    assert score_oeqa(out, ["Paris"], splitter="Answer the following") == "wrong"
    assert score_oeqa("Paris\nI don't know", ["Paris"], splitter="\ni don't") == "correct"


def test_score_mcqa():
    assert score_mcqa("B", gold="B") == "correct"
    assert score_mcqa("The answer is C.", gold="B") == "wrong"
    assert score_mcqa("I don't know.", gold="B") == "refuse"
    assert score_mcqa("I don’t know.", gold="B", refusal_mode="strict") == "fail_parse"
    assert score_mcqa("I don’t know.", gold="B") == "refuse"
    assert score_mcqa("Not sure, maybe B", gold="B", refusal_mode="strict") == "correct"
    assert score_mcqa("Not sure, maybe B", gold="B") == "refuse"
    assert score_mcqa("no letter here", gold="A") == "fail_parse"
    assert score_mcqa("(A)", gold="A", lenient=False) == "fail_parse"


def test_r_tuning_phrases_are_lenient_refusals_only():
    from rait.methods.r_tuning import FALSE_RESPONSES

    assert all(is_refusal(p) for p in FALSE_RESPONSES)
    assert not any(is_refusal(p, mode="strict") for p in FALSE_RESPONSES)  # the papers' detector misses them all
