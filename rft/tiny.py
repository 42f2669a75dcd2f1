"""Tiny models for tests and demos: a locally trained character-level BPE tokenizer with a chat
template, a small Llama, save/load helpers, and `fit_replies` (teach a model fixed chat replies).

Everything here runs on a CPU in seconds; nothing is downloaded.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "make_tokenizer",
    "make_model",
    "save_tiny",
    "load_tiny",
    "fit_replies",
    "warm_start",
]

PAD, BOS, EOS, UNK = "<|pad|>", "<|bos|>", "<|eos|>", "<|unk|>"
ROLES = ("system", "user", "assistant", "tool")
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, *(f"<|{r}|>" for r in ROLES)]
ALPHABET = string.printable  # 100 characters: letters, digits, punctuation, whitespace
MAX_CONTEXT = 2048

# One turn is `<|role|>content<|eos|>`; a prefix of a conversation renders to a prefix of its text,
# and content always sits between two special tokens, so it tokenizes the same in any position.
# The generation markers let TRL's `assistant_only_loss` find the reply tokens.
# Tools (``apply_chat_template(..., tools=[...])``) render Hermes-style, as Qwen's templates do: their schemas in
# a first `system` turn, calls as <tool_call>{"name": ..., "arguments": {...}}</tool_call>, results as `tool` turns.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if tools %}{{ '<|system|>Tools you can call:\n<tools>\n' }}"
    "{% for tool in tools %}{{ tool | tojson }}{{ '\n' }}{% endfor %}"
    "{{ '</tools>\nCall one with <tool_call>{\"name\": NAME, \"arguments\": {...}}</tool_call>.' + eos_token }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>' }}{% generation %}{{ message['content'] }}"
    "{% for call in message.get('tool_calls') or [] %}"
    "{{ '<tool_call>' + (call['function'] | tojson) + '</tool_call>' }}"
    "{% endfor %}{{ eos_token }}{% endgeneration %}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)

# Words keep their leading space; every digit is its own piece (arithmetic stays learnable).
_PIECES = Regex(r" ?[A-Za-z]+|[0-9]| ?[^A-Za-z0-9\s]+|\s+")


def make_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 256) -> PreTrainedTokenizerFast:
    """A character-level BPE over printable ASCII, plus merges learned from `corpus` (up to
    `vocab_size` tokens in all). Other characters become ``<|unk|>``."""
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(_PIECES, behavior="isolated")
    tok.decoder = decoders.Fuse()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=list(ALPHABET),
        show_progress=False,
    )
    texts = ("".join(c for c in text if c in ALPHABET) for text in corpus or ())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        chat_template=CHAT_TEMPLATE,
        model_max_length=MAX_CONTEXT,
        clean_up_tokenization_spaces=False,
    )


def make_model(
    tokenizer: PreTrainedTokenizerBase, hidden: int = 128, layers: int = 2, heads: int = 4, seed: int = 0
) -> LlamaForCausalLM:
    """A freshly initialised small Llama (tied embeddings) sized to `tokenizer`; same seed, same weights."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=MAX_CONTEXT,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def save_tiny(
    path: str | Path,
    model: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    corpus: Iterable[str] | None = None,
) -> Path:
    """Save a model and its tokenizer where `AutoModelForCausalLM`/`AutoTokenizer` load them.
    Without a model, save a fresh tiny one (tokenizer trained on `corpus`)."""
    path = Path(path)
    if tokenizer is None:
        if model is not None:
            raise ValueError("save_tiny: pass the tokenizer that goes with the model")
        tokenizer = make_tokenizer(corpus)
    if model is None:
        model = make_model(tokenizer)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def load_tiny(path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load what `save_tiny` wrote, through the Auto classes."""
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def fit_replies(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[list[dict[str, str]], str]],
    steps: int = 300,
    lr: float = 3e-3,
) -> list[float]:
    """Teach `model` to answer each chat (a list of messages) with its reply, exactly as a server
    would prompt it (chat template with the generation prompt). Full batch, AdamW, loss on the reply
    tokens and the closing eos only. Returns the loss of every step."""
    rows = []
    for messages, reply in pairs:
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((prompt_ids + reply_ids, [-100] * len(prompt_ids) + reply_ids))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])  # (B, T)
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])  # (B, T)
    attention_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])  # (B, T)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return losses


def warm_start(suite: Any, folder: str | Path, *, steps: int = 250, lr: float = 1e-3, batch: int = 64,
               seed: int = 0) -> Path:  # fmt: skip
    """A fresh tiny model taught a suite (`rft.envs.Suite`) by SFT on ``\\boxed{reference}`` replies to its
    train problems, saved to `folder`: tokenizer trained on the first 500 prompts, AdamW at `lr`, `batch`
    random problems per step, loss on the reply and eos only. Same seed, same weights (one torch thread).
    Tests, benchmarks and examples start RL from it (2-digit addition, 250 steps: about half right)."""
    import random

    from rft.rollout import chat_prompt_ids

    items = suite.items("train")
    corpus = [m["content"] for it in items[:500] for m in suite.messages(it)] + ["\\boxed{123}"] * 50
    tok = make_tokenizer(corpus, vocab_size=128)
    model = make_model(tok, seed=seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(steps):
            rows = []
            for it in rng.sample(items, batch):
                prompt = chat_prompt_ids(tok, suite.messages(it))
                reply = tok(f"\\boxed{{{it['reference']}}}", add_special_tokens=False)["input_ids"]
                reply.append(tok.eos_token_id)
                rows.append((prompt + reply, [-100] * len(prompt) + reply))
            width = max(len(a) for a, _ in rows)
            ids = torch.tensor([a + [tok.pad_token_id] * (width - len(a)) for a, _ in rows])  # (B, T)
            labels = torch.tensor([b + [-100] * (width - len(b)) for _, b in rows])  # (B, T)
            attn = (
                torch.arange(width)[None] < torch.tensor([len(a) for a, _ in rows])[:, None]
            ).long()  # (B, T)
            loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return Path(folder)
