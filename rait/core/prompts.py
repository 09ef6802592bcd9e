"""Prompt templates of the RAIT papers (method-spec §A3) and chat-template application.

Styles: ``basic`` (BASIC: bare question for OEQA, "Answer by replying A, B, C or D" for MCQA),
``basic2`` (OEQA "Answer the following question as simple as possible."), ``refuse`` (REFUSE1 / MCQA REFUSE).

Example:
    >>> from rait.data.schema import QAItem
    >>> from rait.core.prompts import user_content
    >>> user_content(QAItem(id="1", question="Capital of France?", answers=["Paris"]), "refuse")
    "Answer the following question, and if you don't know the answer, only reply with 'I don't know': Capital of France?"
    >>> print(user_content(QAItem(id="2", question="2+2?", choices=["3", "4", "5", "6"], gold="B", topic="math"), "basic"))
    There is a single choice question about math. Answer the question by replying A, B, C or D.
    Question: 2+2?
    A. 3
    B. 4
    C. 5
    D. 6
    Answer: 
"""

from __future__ import annotations

from typing import Any, Sequence

from rait.data.schema import QAItem

STYLES = ("basic", "basic2", "refuse")

OEQA_BASIC1 = ""
OEQA_BASIC2 = "Answer the following question as simple as possible."
OEQA_REFUSE1 = "Answer the following question, and if you don't know the answer, only reply with 'I don't know': "
MCQA_BASIC = "There is a single choice question about {task}. Answer the question by replying A, B, C or D."
MCQA_REFUSE = (
    "There is a single choice question about {task}. If you know the answer, please directly respond with the "
    "correct answer A, B, C, or D. If you do not know the answer, please respond with \"I don't know.\"."
)

#: Refusal training targets (method-spec §A2).
REFUSAL_OEQA = "I don't know"
REFUSAL_MCQA = "I don't know."

#: The papers' 3-shot demonstrations for the OEQA knowledge query (TriviaQA unfiltered dev rows 0-2, as
#: hard-coded in CRaFT's train/map_funs.py).
OEQA_FEWSHOT = (
    ("Who was President when the first Peanuts cartoon was published?", "Harry Truman"),
    ("Which American-born Sinclair won the Nobel Prize for Literature in 1930?", "Sinclair Lewis"),
    ("Where in England was Dame Judi Dench born?", "York"),
)


def refusal_for(item: QAItem) -> str:
    """The refusal target string for an item's task type."""
    return REFUSAL_MCQA if item.kind == "mcqa" else REFUSAL_OEQA


def _task(item: QAItem) -> str:
    return (item.topic or "general knowledge").replace("_", " ")


def mcqa_block(item: QAItem) -> str:
    """``Question: q\\nA. ..\\nD. ..\\nAnswer: `` (with the trailing space, as in the papers)."""
    opts = "\n".join(f"{letter}. {text}" for letter, text in zip(item.letters, item.choices or []))
    return f"Question: {item.question}\n{opts}\nAnswer: "


def mcqa_fewshot_text(item: QAItem, demos: Sequence[QAItem]) -> str:
    """The papers' plain-text MCQA knowledge query (method-spec §A3, CRaFT ``mmlu_test_5shot_MC_kq.py``).

    BASIC instruction, then *directly* (no separator) each demonstration as ``Question: …\nA. …\nD. …\nAnswer:
    {gold}\n``, then the test block ending in ``Answer: `` (the option letter follows). No chat template.

    >>> d = QAItem(id="d", question="1+1?", choices=["1", "2", "3", "4"], gold="B", topic="math")
    >>> print(mcqa_fewshot_text(QAItem(id="t", question="2+2?", choices=["3", "4", "5", "6"], gold="B",
    ...                                topic="math"), [d]))
    There is a single choice question about math. Answer the question by replying A, B, C or D.Question: 1+1?
    A. 1
    B. 2
    C. 3
    D. 4
    Answer: B
    Question: 2+2?
    A. 3
    B. 4
    C. 5
    D. 6
    Answer: 

    Args:
        item: the multiple-choice question.
        demos: the demonstrations (the papers: five rows of the same subject).
    """
    if item.kind != "mcqa" or any(d.kind != "mcqa" or not d.gold for d in demos):
        raise ValueError("mcqa_fewshot_text needs multiple-choice items and demonstrations with a gold letter")
    shots = "".join(f"{mcqa_block(d)}{d.gold}\n" for d in demos)
    return f"{MCQA_BASIC.format(task=_task(item))}{shots}{mcqa_block(item)}"


def plain_prefix(tokenizer: Any) -> str:
    """The BOS text a plain-text prompt starts with: the tokenizer's BOS token when it adds one by default
    (as opencompass' ``HuggingFaceBaseModel`` tokenises), else ``""`` (rait's backends add no special tokens)."""
    bos = getattr(tokenizer, "bos_token", None)
    if not bos or getattr(tokenizer, "bos_token_id", None) is None:
        return ""
    ids = tokenizer("x")["input_ids"]
    return bos if ids and ids[0] == tokenizer.bos_token_id else ""


def user_content(item: QAItem, style: str = "basic") -> str:
    """The user-turn text for an item in a prompt style (0-shot).

    Args:
        item: the question.
        style: one of ``basic``, ``basic2``, ``refuse``.
    """
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; expected one of {STYLES}")
    if item.kind == "mcqa":
        instr = (MCQA_REFUSE if style == "refuse" else MCQA_BASIC).format(task=_task(item))
        return f"{instr}\n{mcqa_block(item)}"
    q = item.question
    if item.source == "nq" and not q.rstrip().endswith("?"):
        q = q + "?"
    if style == "refuse":
        return OEQA_REFUSE1 + q
    if style == "basic2":
        return f"{OEQA_BASIC2}\n{q}"
    return OEQA_BASIC1 + q


def build_messages(
    item: QAItem,
    style: str = "basic",
    system_prompt: str | None = "",
    fewshot: int = 0,
    answer: str | None = None,
) -> list[dict[str, str]]:
    """Chat messages for an item, optionally with the papers' few-shot turns and an assistant answer.

    Args:
        item: the question.
        style: prompt style for the final user turn (few-shot turns use the papers' BASIC2 layout).
        system_prompt: explicit system message; ``""`` gives an empty one (overrides a template's default
            system prompt, e.g. SmolLM2's); ``None`` adds no system turn.
        fewshot: number of OEQA demonstrations (0-3) in the papers' multi-turn layout.
        answer: if given, appended as the assistant turn (training rows).
    """
    msgs: list[dict[str, str]] = []
    if system_prompt is not None:
        msgs.append({"role": "system", "content": system_prompt})
    if fewshot:
        if item.kind == "mcqa":
            raise ValueError("chat few-shot is defined for open-ended QA only (MCQA uses plain-text 5-shot)")
        for q, a in OEQA_FEWSHOT[:fewshot]:
            msgs.append({"role": "user", "content": f"{OEQA_BASIC2}\nQuestion: {q}\nAnswer:"})
            msgs.append({"role": "assistant", "content": a + "\n"})  # the papers' demos end with a newline
        msgs.append({"role": "user", "content": f"{OEQA_BASIC2}\nQuestion: {item.question}\nAnswer:"})
    else:
        msgs.append({"role": "user", "content": user_content(item, style)})
    if answer is not None:
        msgs.append({"role": "assistant", "content": answer})
    return msgs


def render(tokenizer: Any, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
    """Apply the tokenizer's chat template to messages (text, not tokens)."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
