"""A warm-started tiny model for RL tests: SFT on 2-digit addition until it solves about half the
held-out problems, so GRPO/PPO have groups with mixed rewards to learn from. Deterministic."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from rft.envs import load_suite
from rft.rollout import chat_prompt_ids
from rft.tiny import make_model, make_tokenizer

ADD_SUITE = """\
id: add-v0
source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2, ops: "+"}, size: 3000, seed: 0}
fields: {id: id, reference: answer}
prompt: {user: "{{ item.question }}"}
grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}", form: number}
split: 0.1
"""


def write_add_suite(folder: Path) -> Path:
    path = folder / "add-v0.yaml"
    path.write_text(ADD_SUITE)
    return path


def warm_model(folder: Path, suite_path: Path, steps: int = 250, lr: float = 1e-3, batch: int = 64) -> Path:
    """SFT a fresh tiny model on `\\boxed{answer}` replies to the suite's train problems; save it."""
    torch.set_num_threads(1)
    suite = load_suite(suite_path)
    items = suite.items("train")
    corpus = [m["content"] for it in items[:500] for m in suite.messages(it)] + ["\\boxed{123}"] * 50
    tok = make_tokenizer(corpus, vocab_size=128)
    model = make_model(tok)
    rng = random.Random(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
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
            attn = (torch.arange(width)[None] < torch.tensor([len(a) for a, _ in rows])[:, None]).long()
            loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
