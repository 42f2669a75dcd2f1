"""A scripted engine for rollout tests: the model's replies are given, everything else is real."""

from __future__ import annotations

from rft.engines import Completion


class Scripted:
    """An engine whose model says the next scripted reply each call (env, tools, template, tokenizer, grader
    are real); each reply ends with the eos token, as a sampled one that stopped would."""

    name = "scripted"

    def __init__(self, tok, replies):
        self.tok, self.replies, self.calls = tok, replies, 0

    def generate(self, prompts, sampling):
        text = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        ids = [*self.tok(text, add_special_tokens=False)["input_ids"], self.tok.eos_token_id]
        return [[Completion(text, ids, "stop")] * sampling.n for _ in prompts]

    def update_weights(self, model):
        pass

    def close(self):
        pass
