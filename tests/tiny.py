"""Tiny in-code causal LMs and tokenizers for offline tests (no downloads).

Example:
    >>> from tests.tiny import make_tiny_model_dir
    >>> import tempfile
    >>> d = make_tiny_model_dir(tempfile.mkdtemp())  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import torch

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "What is the capital of France? Paris. The capital of Italy is Rome.",
    "I don't know. Answer the following question, and if you don't know the answer, only reply with 'I don't know': ",
    "There is a single choice question about math. Answer the question by replying A, B, C or D.",
    "Question: Answer: A. B. C. D. Who wrote Hamlet? William Shakespeare. What is 2+2? 4",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"-()[]{}/\\_ \n",
    "system user assistant Sure, I am sure, I am unsure. Are you sure you accurately answered the question?",
]


def make_tokenizer():
    """A small byte-level BPE tokenizer with a ChatML template, pad and eos tokens (vocab ~400)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML
    fast.padding_side = "left"
    return fast


def make_tiny_model(tokenizer=None, seed: int = 0, hidden: int = 32, layers: int = 2):
    """A randomly initialised 2-layer Llama (fp32) sized to the tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or make_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def make_tiny_model_dir(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny model + tokenizer to ``path`` (an HF directory usable as a model spec)."""
    path = Path(path)
    tok = make_tokenizer()
    model = make_tiny_model(tok, seed=seed)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
