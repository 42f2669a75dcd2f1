"""The chunked output head (rft.logprobs): the same log-probabilities and gradients as the full logits, on
real architectures (Llama, Qwen2, Gemma2's soft-capped logits, a LoRA model), in every path that scores
tokens (token_logprobs, shared_prefix_logprobs), and peak memory that grows with the chunk, not with T x V."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from rft.batch import Batch, shared_prefix_logprobs, token_logprobs
from rft.logprobs import chunked_logprobs, head_of
from rft.losses import entropy_from_logits

torch.set_num_threads(1)


def test_chunked_head_equals_the_full_logits_values_entropies_and_gradients():
    g = torch.Generator().manual_seed(0)
    B, T, H, V = 2, 7, 16, 50
    hidden = torch.randn(B, T, H, generator=g, dtype=torch.float64, requires_grad=True)
    head = torch.nn.Linear(H, V, bias=True).double()
    targets = torch.randint(0, V, (B, T), generator=g)
    for temperature, cap in ((1.0, None), (0.7, None), (1.0, 5.0)):
        logits = head(hidden)
        if cap:
            logits = cap * torch.tanh(logits / cap)
        logits = logits / temperature
        want = F.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]  # (B, T)
        (w_h, w_w) = torch.autograd.grad(want.sum(), (hidden, head.weight))
        for chunk in (1, 3, 7, 100):
            lp, ent = chunked_logprobs(hidden, targets, head, temperature, chunk, cap, entropy=True)
            torch.testing.assert_close(lp.double(), want, atol=1e-5, rtol=0)
            torch.testing.assert_close(ent.double(), entropy_from_logits(logits.detach()), atol=1e-5, rtol=0)
            (g_h, g_w) = torch.autograd.grad(lp.sum(), (hidden, head.weight))
            torch.testing.assert_close(g_h.double(), w_h, atol=1e-5, rtol=0)
            torch.testing.assert_close(g_w.double(), w_w, atol=1e-5, rtol=0)
    # the entropy as a metric: the same values, no gradient (nothing for backward to recompute)
    _, with_grad = chunked_logprobs(hidden, targets, head, chunk=3, entropy=True)
    _, metric = chunked_logprobs(hidden, targets, head, chunk=3, entropy=True, entropy_grad=False)
    assert with_grad.requires_grad and not metric.requires_grad
    torch.testing.assert_close(metric, with_grad.detach())
    with pytest.raises(ValueError, match="chunk"):
        chunked_logprobs(hidden, targets, head, chunk=0)


def test_known_gradient_head_gives_the_same_values_and_gradients():
    """A loss linear in the log-probabilities (GRPO's on-policy pass): with its gradient given in advance
    (`known_grad`), the head computes its gradients in the forward pass; values and gradients are those of
    the checkpointed head, with and without bias, temperature and soft-cap."""
    g = torch.Generator().manual_seed(1)
    B, T, H, V = 3, 8, 16, 50
    targets = torch.randint(0, V, (B, T), generator=g)
    coef = torch.randn(B, T, generator=g, dtype=torch.float64) * (torch.rand(B, T, generator=g) > 0.3)
    for temperature, cap, bias in (
        (1.0, None, True),
        (0.7, None, False),
        (1.0, 5.0, True),
        (0.6, 3.0, False),
    ):
        hidden = torch.randn(B, T, H, generator=g, dtype=torch.float64, requires_grad=True)
        head = torch.nn.Linear(H, V, bias=bias).double()
        params = (hidden, head.weight) + ((head.bias,) if bias else ())
        lp, ent = chunked_logprobs(
            hidden, targets, head, temperature, 3, cap, entropy=True, entropy_grad=False
        )
        want = torch.autograd.grad((lp * coef).sum(), params)
        for chunk in (1, 3, 100):
            got_lp, got_ent = chunked_logprobs(
                hidden, targets, head, temperature, chunk, cap, entropy=True, known_grad=coef
            )
            torch.testing.assert_close(got_lp, lp.detach())
            torch.testing.assert_close(got_ent, ent)
            got = torch.autograd.grad((got_lp * coef).sum(), params)
            for a, b in zip(got, want, strict=True):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)  # float32 logits in both
    # a loss scaled by a constant (several processes, a gradient scaler): the gradients scale with it
    lp, _ = chunked_logprobs(hidden, targets, head, chunk=3, known_grad=coef)
    plain, _ = chunked_logprobs(hidden, targets, head, chunk=3)
    want_h = torch.autograd.grad((plain * coef * 3).sum(), hidden)[0]
    torch.testing.assert_close(
        torch.autograd.grad((lp * coef * 3).sum(), hidden)[0], want_h, atol=1e-5, rtol=1e-5
    )
    # a loss whose gradient is not a multiple of the one given: backward refuses instead of a wrong gradient
    lp, _ = chunked_logprobs(hidden, targets, head, chunk=3, known_grad=coef)
    with pytest.raises(RuntimeError, match="known_grad"):
        torch.autograd.grad((lp * coef * torch.rand_like(coef)).sum(), hidden)
    with pytest.raises(ValueError, match="shape"):
        chunked_logprobs(hidden, targets, head, known_grad=coef[:, :-1])


def _models():
    from transformers import (
        Gemma2Config,
        Gemma2ForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    kw = {"vocab_size": 97, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2}  # fmt: skip
    torch.manual_seed(0)
    yield "llama-tied", LlamaForCausalLM(LlamaConfig(**kw, tie_word_embeddings=True))
    yield "qwen2", Qwen2ForCausalLM(Qwen2Config(**kw))
    yield "gemma2-softcap", Gemma2ForCausalLM(Gemma2Config(**kw, head_dim=8, attn_implementation="eager"))
    from peft import LoraConfig, get_peft_model

    base = LlamaForCausalLM(LlamaConfig(**kw))
    yield "llama-lora", get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))


def _full(model, batch, temperature):
    logits = model(input_ids=batch.ids, attention_mask=batch.attn).logits[:, :-1, :].float() / temperature
    return F.log_softmax(logits, -1).gather(-1, batch.ids[:, 1:, None])[..., 0]


@pytest.mark.parametrize("name", ["llama-tied", "qwen2", "gemma2-softcap", "llama-lora"])
def test_scoring_paths_use_the_chunked_head_and_match_the_full_logits(name):
    model = dict(_models())[name]
    assert head_of(model) is not None
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(1, 97, (5,), generator=g)
    rows = [torch.cat([prompt, torch.randint(1, 97, (n,), generator=g)]) for n in (6, 3, 8)]
    T = max(len(r) for r in rows)
    ids = torch.zeros(3, T, dtype=torch.long)
    attn = torch.zeros(3, T, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)], attn[i, : len(r)] = r, 1
    mask = torch.zeros(3, T - 1)
    for i, r in enumerate(rows):
        mask[i, 4 : len(r) - 1] = 1  # the completion tokens' positions
    batch = Batch(ids, attn, mask)
    params = [p for p in model.parameters() if p.requires_grad]
    want = _full(model, batch, 0.8)
    want_g = torch.autograd.grad((want * mask).sum(), params)
    for lp in (
        token_logprobs(model, batch, 0.8, chunk=2),
        shared_prefix_logprobs(model, batch, [5, 5, 5], 0.8, chunk=3),
    ):
        torch.testing.assert_close(lp * mask, want * mask, atol=2e-5, rtol=0)
        got_g = torch.autograd.grad((lp * mask).sum(), params)
        for a, b in zip(got_g, want_g, strict=True):
            torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["granite", "cohere"])
def test_models_that_scale_their_logits_are_scored_exactly(family):
    """Granite divides the head's output by `logits_scaling`, Cohere multiplies it by `logit_scale`: the
    chunked head does not apply that, so they take the full logits (it was 0.15-0.24 nats off)."""
    from transformers import CohereConfig, CohereForCausalLM, GraniteConfig, GraniteForCausalLM

    kw = {"vocab_size": 97, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
          "num_attention_heads": 4, "num_key_value_heads": 2, "eos_token_id": 2}  # fmt: skip
    torch.manual_seed(0)
    if family == "granite":
        model = GraniteForCausalLM(GraniteConfig(**kw, logits_scaling=4.0))
    else:
        model = CohereForCausalLM(CohereConfig(**kw, logit_scale=0.25))
    assert head_of(model) is None
    ids = torch.randint(1, 97, (2, 9), generator=torch.Generator().manual_seed(0))
    batch = Batch(ids, torch.ones_like(ids), torch.ones(2, 8))
    with torch.no_grad():
        torch.testing.assert_close(
            token_logprobs(model, batch, 0.8), _full(model, batch, 0.8), atol=1e-5, rtol=0
        )


_POLLER = '''
import threading, time
def anon_kb():  # the process's anonymous memory: what tensors take (file pages of libraries come and go)
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("RssAnon:"))
def anon_peak_growth_mb(fn, *args):
    # fn(*args) and the peak growth of anonymous memory while it ran (polled every millisecond): neither
    # an earlier transient peak (ru_maxrss) nor library pages evicted under memory pressure move it
    base, peak, done = anon_kb(), [0], threading.Event()
    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], anon_kb())
            time.sleep(0.001)
    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        out = fn(*args)
    finally:
        done.set()
        t.join()
    return out, (max(peak[0], anon_kb()) - base) / 1024
'''  # the two scripts below measure memory with it


def _with_poller(script: str) -> str:
    """A measuring script (dedented) with `_POLLER` where it says ``# POLLER``."""
    return textwrap.dedent(script).replace("# POLLER\n", _POLLER)


_PEAK = _with_poller(
    """
    import json, sys, torch
    # POLLER
    from transformers import LlamaConfig, LlamaForCausalLM
    from rft.batch import Batch, shared_prefix_stats, token_logprobs, token_stats
    from rft.logprobs import chunk_positions
    torch.set_num_threads(1)
    T, budget, fn = int(sys.argv[1]), int(sys.argv[2]) * 2**20, sys.argv[3]
    V = 32000
    model = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True))
    def run(t):
        ids = torch.randint(0, V, (2, t))
        ids[1, : t // 2] = ids[0, : t // 2]  # a shared prompt of t/2 tokens (for shared_prefix_stats)
        b = Batch(ids, torch.ones_like(ids), torch.ones(2, t - 1))
        chunk = chunk_positions(2, V, budget) if budget else 0
        if fn == "stats":  # with the entropy and its gradient (the entropy bonus)
            lp, ent = token_stats(model, b, chunk=chunk, entropy=True)
            lp = lp + ent
        elif fn == "shared":
            lp, ent = shared_prefix_stats(model, b, [t // 2] * 2, chunk=chunk, entropy=True)
            lp = lp + ent
        elif budget:
            lp = token_logprobs(model, b, chunk=chunk)
        else:  # the full logits, as before
            lp = torch.log_softmax(model(input_ids=b.ids).logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None])
        lp.sum().backward()
        model.zero_grad(set_to_none=True)
    run(16)
    _, grew = anon_peak_growth_mb(run, T)
    print(json.dumps({"grew_mb": grew}))
    """
)


def _peak_growth_mb(T: int, chunk: int, fn: str = "logprobs") -> float:
    res = subprocess.run(
        [sys.executable, "-c", _PEAK, str(T), str(chunk), fn], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return float(json.loads(res.stdout.strip().splitlines()[-1])["grew_mb"])


def test_peak_memory_grows_with_the_chunk_not_with_t_times_v():
    """Forward and backward of 2 rows x 4,096 tokens at V = 32,000: the full logits are 1 GB in float32 (and
    their log-softmax and gradient as much again); chunks of 64 MB of logits (262 positions) or 512 MB."""
    full = _peak_growth_mb(4096, 0)
    small = _peak_growth_mb(4096, 64)
    big = _peak_growth_mb(4096, 512)
    print(f"peak growth MB: full {full:.0f}, chunks of 64 MB {small:.0f}, of 512 MB {big:.0f}")
    assert full > 2000  # the full logits path holds several (B, T, V) tensors at once
    assert small < 400  # a few chunks' worth, far below one (B, T, V) float32 tensor (1,000 MB)
    assert big > small + 500  # the peak follows the chunk


@pytest.mark.parametrize("fn", ["stats", "shared"])
def test_peak_memory_of_entropies_and_shared_prefixes_stays_at_the_chunk(fn):
    """As above for `token_stats` with entropies (and their gradient: the entropy bonus) and for
    `shared_prefix_stats` (two rows sharing a 2,048-token prompt), in chunks of 64 MB of logits: the
    peak stays below one (B, T, V) float32 tensor (1,049 MB; the full path holds several). The entropy's
    backward recomputes a chunk's logits, probabilities and their products: measured 597 MB for stats."""
    grew = _peak_growth_mb(4096, 64, fn)
    print(f"peak growth MB of {fn}: {grew:.0f}")
    assert grew < 900


_SAMPLE_PEAK = _with_poller(
    """
    import json, sys, torch
    # POLLER
    from transformers import LlamaConfig, LlamaForCausalLM
    from rft.engines import HFEngine, Sampling
    from rft.tiny import make_tokenizer
    torch.set_num_threads(1)
    T, mode = int(sys.argv[1]), sys.argv[2]
    V = 64000
    tok = make_tokenizer(["What is 12 + 5?"] * 20)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True))
    model.generation_config.eos_token_id = None
    engine = HFEngine(model, tok, batch_size=4)
    prompt = tok("What is 12 + 5?", add_special_tokens=False)["input_ids"]
    def run(t):
        if mode == "engine":
            out = engine.generate([prompt], Sampling(n=4, max_new_tokens=t, seed=0, logprobs=True))[0]
            assert all(len(c.logprobs) == len(c.token_ids) for c in out)
            return sum(len(c.token_ids) for c in out)
        ids = torch.tensor([prompt] * 4)  # the control: transformers keeping every step's logits
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=t,
                                 min_new_tokens=t, do_sample=True, pad_token_id=0, eos_token_id=None,
                                 return_dict_in_generate=True, output_logits=True)
        return len(gen.logits) * 4
    run(16)
    tokens, grew = anon_peak_growth_mb(run, T)
    print(json.dumps({"grew_mb": grew, "tokens": tokens}))
    """
)


def _sample_peak(T: int, mode: str) -> tuple[float, int]:
    # each step's (4, V) float32 tensors are 1 MB: below glibc's dynamic mmap threshold they come from the
    # heap, whose fragmentation added 5-90 MB of noise to the peak between identical runs; a fixed
    # threshold mmaps them (freed memory goes back at once) and measures what is held
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    res = subprocess.run(
        [sys.executable, "-c", _SAMPLE_PEAK, str(T), mode],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return float(out["grew_mb"]), int(out["tokens"])


def test_sampling_logprobs_memory_does_not_grow_with_t_times_v():
    """HFEngine with logprobs=True, 4 rows x 128 or 512 new tokens at V = 64,000: every step's logits
    would be 131 MB or 524 MB in float32 (the control: `generate(output_logits=True)` keeps them all); the
    engine keeps one step's (B, V) at a time, so its peak does not follow T."""
    control, _ = _sample_peak(512, "output_logits")
    short, n_short = _sample_peak(128, "engine")
    long, n_long = _sample_peak(512, "engine")
    print(f"peak growth MB: output_logits T=512 {control:.0f}; engine T=128 {short:.0f}, T=512 {long:.0f}")
    assert n_long > 3 * n_short  # (a row may sample eos and stop early)
    assert control > 400  # the measurement sees T steps of (B, V) logits when they are kept
    assert long < 50 and long < short + 25  # one step's (B, V) at a time, a few times over
