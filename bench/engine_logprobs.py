"""Sampling speed and memory of `HFEngine` with and without the sampled tokens' log-probabilities.

Anchor: the same `generate` call with ``Sampling(logprobs=False)`` (seeded, so both sample the same tokens).
Models from configs, random init: a Qwen2-shaped model at Qwen's vocabulary (151,936 tokens, hidden 64,
one layer: the output head dominates, as it does in real models' decoding) and the tiny Llama of
`rft.tiny` (a ~100-token vocabulary). Rows: tokens/s (median of --repeat runs) and the growth of peak RSS
over the anchor's (the log-probabilities' memory: T steps of (B, V) logits if they were all kept). A
third row per model is the method the engine used before (``generate(output_logits=True)``, then one
log-softmax over the stacked (B, T, V)), in the same run. The last lines are at the large vocabulary:
``before_speed_ratio=`` and ``logprobs_speed_ratio=`` (tokens/s over the anchor's) and
``logprobs_extra_peak_mb=`` (the engine's peak RSS growth with log-probs).
Run: python bench/engine_logprobs.py [--rows 8] [--tokens 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from rft.engines import Completion, HFEngine, Sampling


class KeptLogits(HFEngine):
    """The engine's log-probabilities as computed before: `generate(output_logits=True)` keeps every step's
    (B, V) logits, then one log-softmax over the stacked (B, T, V). (No stop strings.)"""

    def _batch(self, rows: list[list[int]], s: Sampling) -> list[Completion]:
        tok = self.tokenizer
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])  # (B, P)
        attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])  # (B, P)
        gen = self.model.generate(  # type: ignore[operator]
            input_ids=input_ids, attention_mask=attention_mask, pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id, return_dict_in_generate=True, output_logits=s.logprobs,
            do_sample=True, max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p,
            top_k=s.top_k or None,
        )  # fmt: skip
        new = gen.sequences[:, width:]  # (B, T)
        logprobs = None
        if s.logprobs:
            logits = torch.stack(gen.logits, dim=1).float() / s.temperature  # (B, T, V)
            logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)  # (B, T)
        return [
            self._completion(new[i].tolist(), None if logprobs is None else logprobs[i].tolist(), s)
            for i in range(len(rows))
        ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8, help="completions sampled at once")
    ap.add_argument("--tokens", type=int, default=256, help="max_new_tokens")
    ap.add_argument("--repeat", type=int, default=3, help="report the median of this many runs")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rft.tiny import make_model, make_tokenizer

    tok = make_tokenizer(["What is 12 + 5? The answer is 17."] * 20)
    torch.manual_seed(0)
    models = {
        "qwen2 V=151936": Qwen2ForCausalLM(
            Qwen2Config(
                vocab_size=151936,
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=1,
                num_attention_heads=4,
                num_key_value_heads=2,
                tie_word_embeddings=True,
            )
        ),
        f"tiny llama V={len(tok)}": make_model(tok),
    }
    prompt = tok("What is 12 + 5?", add_special_tokens=False)["input_ids"]
    rows: list[tuple[str, str, float, float, float]] = []  # model, mode, tokens/s, peak growth MB, anchor
    ratio = extra = before_ratio = 0.0
    for name, model in models.items():
        model.eval()
        engine = HFEngine(model, tok, batch_size=args.rows)
        before = KeptLogits(model, tok, batch_size=args.rows)
        check = Sampling(n=args.rows, max_new_tokens=16, seed=2, logprobs=True)
        for a, b in zip(
            engine.generate([prompt], check)[0], before.generate([prompt], check)[0], strict=True
        ):
            assert a.token_ids == b.token_ids and torch.allclose(
                torch.tensor(a.logprobs), torch.tensor(b.logprobs)
            )

        def engine_run(engine: HFEngine, logprobs: bool) -> int:
            s = Sampling(n=args.rows, max_new_tokens=args.tokens, seed=1, logprobs=logprobs)
            out = engine.generate([prompt], s)[0]
            assert not logprobs or all(len(c.logprobs) == len(c.token_ids) for c in out)
            return sum(len(c.token_ids) for c in out)

        def measure(fn: Callable[[], int]) -> tuple[float, float]:
            """(median tokens/s, peak RSS growth in MB over the runs)."""
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            speeds = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                tokens = fn()
                speeds.append(tokens / (time.perf_counter() - t0))
            grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
            return statistics.median(speeds), grew

        engine.generate([prompt], Sampling(n=2, max_new_tokens=4, seed=0, logprobs=True))  # warm-up
        # the anchor first, then the engine's log-probs, then the old method: peak RSS only rises
        plain, _ = measure(partial(engine_run, engine, False))
        with_lp, grew = measure(partial(engine_run, engine, True))
        old, old_grew = measure(partial(engine_run, before, True))
        rows.append((name, "logprobs=False (anchor)", plain, 0.0, plain))
        rows.append((name, "logprobs=True", with_lp, grew, plain))
        rows.append((name, "kept logits (before)", old, old_grew, plain))
        if not ratio:
            ratio, extra, before_ratio = with_lp / plain, grew, old / plain
    print(f"{args.rows} rows x {args.tokens} new tokens, median of {args.repeat}, 1 torch thread")
    print(f"{'model':<22} {'mode':<24} {'tokens/s':>9} {'peak +MB':>9} {'vs anchor':>9}")
    for name, mode, speed, grew, anchor in rows:
        print(f"{name:<22} {mode:<24} {speed:>9.0f} {grew:>9.0f} {speed / anchor:>9.2f}")
    print(f"before_speed_ratio={before_ratio:.3f}")
    print(f"logprobs_speed_ratio={ratio:.3f}")
    print(f"logprobs_extra_peak_mb={extra:.0f}")


if __name__ == "__main__":
    main()
