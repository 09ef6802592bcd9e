"""Prompt templates of the papers (method-spec §A3): exact strings, message layout, chat-template rendering."""

from __future__ import annotations

import pytest

from rait.core.prompts import (
    OEQA_FEWSHOT,
    REFUSAL_MCQA,
    REFUSAL_OEQA,
    build_messages,
    mcqa_block,
    refusal_for,
    render,
    user_content,
)
from rait.data.schema import QAItem

OE = QAItem(id="t1", question="Who wrote Hamlet?", answers=["William Shakespeare", "Shakespeare"], source="triviaqa")
NQ = QAItem(id="n1", question="who wrote hamlet", answers=["Shakespeare"], source="nq")
MC = QAItem(id="m1", question="What is 2+2?", choices=["3", "4", "5", "6"], gold="B", topic="high_school_mathematics")

MC_BLOCK = "Question: What is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer: "


def test_mcqa_basic_exact():
    assert user_content(MC, "basic") == (
        "There is a single choice question about high school mathematics. "
        "Answer the question by replying A, B, C or D.\n" + MC_BLOCK
    )
    assert user_content(MC, "basic").endswith("Answer: ")  # the papers' trailing space
    assert mcqa_block(MC) == MC_BLOCK


def test_mcqa_refuse_exact():
    assert user_content(MC, "refuse") == (
        "There is a single choice question about high school mathematics. If you know the answer, please directly "
        "respond with the correct answer A, B, C, or D. If you do not know the answer, please respond with "
        "\"I don't know.\".\n" + MC_BLOCK
    )


def test_mcqa_basic2_uses_basic_instruction():
    assert user_content(MC, "basic2") == user_content(MC, "basic")


def test_mcqa_topic_defaults_and_arc_stem():
    no_topic = QAItem(id="m2", question="q", choices=["a", "b", "c", "d"], gold="A")
    assert user_content(no_topic).startswith("There is a single choice question about general knowledge.")
    arc = QAItem(id="a1", question="q", choices=["a", "b", "c", "d"], gold="A", topic="STEM", source="arc")
    assert user_content(arc).startswith("There is a single choice question about STEM. Answer")


def test_mcqa_more_options():
    five = QAItem(id="m5", question="q?", choices=["a", "b", "c", "d", "e"], gold="E")
    assert mcqa_block(five) == "Question: q?\nA. a\nB. b\nC. c\nD. d\nE. e\nAnswer: "


def test_oeqa_prompts_exact():
    assert user_content(OE, "basic") == "Who wrote Hamlet?"  # BASIC1 is empty: the bare question
    assert user_content(OE, "basic2") == "Answer the following question as simple as possible.\nWho wrote Hamlet?"
    assert user_content(OE, "refuse") == (
        "Answer the following question, and if you don't know the answer, only reply with 'I don't know': "
        "Who wrote Hamlet?"
    )


def test_nq_gets_question_mark():
    assert user_content(NQ, "basic") == "who wrote hamlet?"
    assert user_content(NQ, "refuse").endswith(": who wrote hamlet?")
    already = QAItem(id="n2", question="who wrote hamlet?", answers=["x"], source="nq")
    assert user_content(already) == "who wrote hamlet?"  # not doubled
    other = QAItem(id="t2", question="who wrote hamlet", answers=["x"], source="triviaqa")
    assert user_content(other) == "who wrote hamlet"  # only NQ gets one


def test_unknown_style():
    with pytest.raises(ValueError, match="unknown prompt style"):
        user_content(OE, "refuse2")


def test_refusal_targets():
    assert refusal_for(OE) == REFUSAL_OEQA == "I don't know"
    assert refusal_for(MC) == REFUSAL_MCQA == "I don't know."


def test_build_messages_system_prompt():
    assert build_messages(OE) == [{"role": "system", "content": ""}, {"role": "user", "content": "Who wrote Hamlet?"}]
    assert build_messages(OE, system_prompt=None) == [{"role": "user", "content": "Who wrote Hamlet?"}]
    assert build_messages(OE, system_prompt="Be brief.")[0] == {"role": "system", "content": "Be brief."}


def test_build_messages_answer():
    msgs = build_messages(MC, "refuse", answer="B")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert msgs[1]["content"] == user_content(MC, "refuse")
    assert msgs[2] == {"role": "assistant", "content": "B"}
    msgs = build_messages(OE, "refuse", system_prompt=None, answer="I don't know")
    assert msgs == [{"role": "user", "content": user_content(OE, "refuse")},
                    {"role": "assistant", "content": "I don't know"}]


def test_fewshot_layout():
    msgs = build_messages(OE, "basic", system_prompt="", fewshot=3)
    assert [m["role"] for m in msgs] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    instr = "Answer the following question as simple as possible."
    assert msgs[1]["content"] == (
        f"{instr}\nQuestion: Who was President when the first Peanuts cartoon was published?\nAnswer:")
    assert msgs[2]["content"] == "Harry Truman\n"
    assert msgs[3]["content"] == (
        f"{instr}\nQuestion: Which American-born Sinclair won the Nobel Prize for Literature in 1930?\nAnswer:")
    assert msgs[4]["content"] == "Sinclair Lewis\n"
    assert msgs[5]["content"] == f"{instr}\nQuestion: Where in England was Dame Judi Dench born?\nAnswer:"
    assert msgs[6]["content"] == "York\n"
    assert msgs[7]["content"] == f"{instr}\nQuestion: Who wrote Hamlet?\nAnswer:"
    assert [a for _, a in OEQA_FEWSHOT] == ["Harry Truman", "Sinclair Lewis", "York"]


def test_fewshot_counts_and_mcqa_refused():
    one = build_messages(OE, fewshot=1, system_prompt=None)
    assert len(one) == 3 and one[1]["content"] == "Harry Truman\n"
    with pytest.raises(ValueError, match="open-ended"):
        build_messages(MC, fewshot=3)


def test_render_with_tiny_tokenizer():
    from tests.tiny import make_tokenizer

    tok = make_tokenizer()
    text = render(tok, build_messages(OE, "refuse"))
    assert text == (
        "<|im_start|>system\n<|im_end|>\n"
        "<|im_start|>user\n" + user_content(OE, "refuse") + "<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    no_gen = render(tok, build_messages(OE, "basic", system_prompt=None, answer="Shakespeare"),
                    add_generation_prompt=False)
    assert no_gen == ("<|im_start|>user\nWho wrote Hamlet?<|im_end|>\n"
                      "<|im_start|>assistant\nShakespeare<|im_end|>\n")
    mc = render(tok, build_messages(MC, "basic"))
    assert "Answer: <|im_end|>" in mc  # the trailing space survives the template


def test_fewshot_assistant_turns_end_with_newline_per_spec():
    msgs = build_messages(OE, fewshot=3)
    assert [m["content"] for m in msgs if m["role"] == "assistant"] == ["Harry Truman\n", "Sinclair Lewis\n", "York\n"]
