"""Golden tests for rait.core.scoring (method-spec §A2, §A4)."""

import pytest

from rait.core.scoring import (
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


# Golden cases of the papers' MCQA parser. Each expected letter was checked against the evaluator itself
# (opencompass ``first_option_postprocess`` of Zrc007/opencompass_CRaFT @71601fb, run on the same strings);
# ``legacy`` is rait's parser before the faithful port (kept as ``rule="legacy"`` to re-score old runs).
PARSE_GOLDEN = [
    # text, opencompass (papers), legacy
    ("B", "B", "B"),
    ("B. A cell membrane", "B", "A"),  # letter at the start of the text: (\s|^) — legacy needed a whitespace
    ("A, since C is false", "A", "C"),  # "A," at the start wins over the later " C "
    ("C because D is wrong", "C", "D"),
    ("B is correct, since A fails.", "B", "A"),  # " A " is not tried before "B " at the start
    ("B. 4", "B", "B"),
    ("The answer is (C).", "C", "C"),
    ("the correct answer is: D", "D", "D"),
    ("Answer: C", "C", "C"),  # "… X" at the end after ':'/whitespace
    ("I think it is D", "D", "D"),
    ("Option B is right", "B", "B"),
    ("(A)", "A", "A"),  # only the first-letter-anywhere fallback matches
    ("ABC News", "A", "A"),  # fallback again
    ("none of them", None, None),
    ("", None, None),
    ("The answer is B, not A.", "A", "A"),  # the "X. at the end" pattern is tried before "The answer is X"
    ("The answer is Beethoven", "B", "B"),  # 'answer is X' matches the first letter of a word
    ("C) Mitochondria", "C", "C"),
    ("D.", "D", "D"),
    ("  A  ", "A", "A"),  # the text is stripped first
    ("B\nC", "C", "C"),  # "\nC" at the end
    ("The correct answer is option D", "D", "D"),
    ("Cell membranes: B", "B", "B"),
    ("1. C", "C", "C"),
    ("The answer is 12 Bananas", "B", "B"),
    ("Is it A or B?", "A", "A"),
    ("(C) Because A and B are wrong", "A", "A"),  # " A " is the first whitespace-delimited letter
    ("B: Paris", "B", "B"),
    ("A cell is B", "B", "B"),  # " B" at the end beats "A " at the start
    ("The answer to the question is (B)", "B", "B"),
    ("Answer: A. Dogs", "A", "A"),
    ("Definitely C", "C", "C"),
    ("I would say D: it is a Cell", "D", "D"),
    ("The best option is 3", None, None),
    ("Both A and D", "D", "D"),
    ("答案是 C", "C", "C"),  # the Chinese patterns come first in the evaluator
    ("the answer is d", None, None),  # lowercase letters never count
    ("**B**", "B", "B"),
    ("Option (D) Cats", "D", "D"),
    ("There are 10 Cells, Bob said", "B", "B"),  # "1." = "1" + any character, then the first option letter
    ("It's D, the Dog", "D", "D"),
    ("A.B.C.", "A", "A"),
    ("The correct answer is: \\boxed{C}", "C", "C"),
]


@pytest.mark.parametrize("text, papers, legacy", PARSE_GOLDEN)
def test_parse_option_golden(text, papers, legacy):
    assert parse_option(text) == papers
    assert parse_option(text, rule="opencompass") == papers
    assert parse_option(text, rule="legacy") == legacy


def test_parse_option_switches():
    assert parse_option("ABC News", lenient=False) is None
    assert parse_option("(B)", lenient=False) is None
    assert parse_option("Option B is right", lenient=False) == "B"
    assert parse_option("Paris/B: yes", cushion=False) is None  # only the cushion 'X:' pattern matches
    assert parse_option("Paris/B: yes", lenient=False) == "B"
    assert parse_option("B: Paris", cushion=False) == "B"  # letter at the start
    assert parse_option("B: Paris", cushion=False, rule="legacy") is None
    assert parse_option("The answer is E", letters="ABCDE") == "E"
    assert parse_option("The answer is E") is None
    with pytest.raises(ValueError, match="parse rule"):
        parse_option("A", rule="loose")


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
    assert score_mcqa("B. A cell membrane", gold="B") == "correct"
    assert score_mcqa("B. A cell membrane", gold="B", rule="legacy") == "wrong"


def test_r_tuning_phrases_are_lenient_refusals_only():
    from rait.methods.r_tuning import FALSE_RESPONSES

    assert all(is_refusal(p) for p in FALSE_RESPONSES)
    assert not any(is_refusal(p, mode="strict") for p in FALSE_RESPONSES)  # the papers' detector misses them all


def test_echo_aliases_and_echo_safe_scoring():
    from rait.core.scoring import echo_aliases

    q = "Which capital city is known as Beograd by its inhabitants?"
    aliases = ["Belgrade", "Beograd", "BG"]
    assert echo_aliases(q, aliases) == ["Beograd"]
    assert echo_aliases(q, ["bg", "  beograd "]) == ["  beograd "]  # case-insensitive, stripped; 2 chars never
    assert echo_aliases("Who painted it?", ["Monet"]) == []
    out = "Beograd is a city in the South East of Europe"
    assert score_oeqa(out, aliases) == "correct"  # the papers' rule credits the echo
    assert score_oeqa(out, aliases, scoring="echo_safe", question=q) == "wrong"
    assert score_oeqa("Belgrade", aliases, scoring="echo_safe", question=q) == "correct"  # other aliases count
    assert score_oeqa("I don't know", aliases, scoring="echo_safe", question=q) == "refuse"
    assert score_oeqa("Paris", ["Paris"], scoring="echo_safe", question="Capital of France?") == "correct"
    with pytest.raises(ValueError, match="needs the question"):
        score_oeqa(out, aliases, scoring="echo_safe")
    with pytest.raises(ValueError, match="unknown scoring"):
        score_oeqa(out, aliases, scoring="loose")
