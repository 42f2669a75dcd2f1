"""Engines and rollouts on tiny models: seeded sampling, stop strings, log-probabilities, the
multi-turn token layout and mask, shared-prefix log-probs, the child-process engine."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rft.batch import collate, token_logprobs
from rft.engines import Completion, HFEngine, Sampling
from rft.envs import SuiteEnv, load_suite
from rft.rl.harness import prompt_indices
from rft.rollout import TemplateMismatch, Trajectory, chat_prompt_ids, run_episodes, turn_suffix_ids
from rft.tiny import make_model, make_tokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    tok = make_tokenizer(["What is 12 + 5? \\boxed{17} The answer is"] * 20)
    return make_model(tok), tok


def ids_of(tok, messages):
    return chat_prompt_ids(tok, messages)


# ---- engine ------------------------------------------------------------------------------------------


def test_hf_engine_seeded_sampling_and_shapes(tiny):
    model, tok = tiny
    engine = HFEngine(model, tok, batch_size=3)
    prompts = [ids_of(tok, [{"role": "user", "content": q}]) for q in ("What is 1 + 2?", "Hi")]
    a = engine.generate(prompts, Sampling(n=4, max_new_tokens=10, seed=3))
    b = engine.generate(prompts, Sampling(n=4, max_new_tokens=10, seed=3))
    c = engine.generate(prompts, Sampling(n=4, max_new_tokens=10, seed=4))
    assert [len(x) for x in a] == [4, 4] and a == b and a != c
    for comp in a[0] + a[1]:
        assert 1 <= len(comp.token_ids) <= 10
        assert tok.decode(comp.token_ids, skip_special_tokens=True) == comp.text
        eos = tok.eos_token_id in comp.token_ids
        assert comp.finish_reason == ("stop" if eos else "length")
        if eos:
            assert comp.token_ids[-1] == tok.eos_token_id
    greedy = engine.generate(prompts, Sampling(temperature=0, n=2, max_new_tokens=8))
    assert greedy[0][0] == greedy[0][1]


def test_stop_strings_cut_the_text(tiny):
    model, tok = tiny
    engine = HFEngine(model, tok)
    prompt = ids_of(tok, [{"role": "user", "content": "What is 1 + 2?"}])
    free = engine.generate([prompt], Sampling(temperature=0, max_new_tokens=24))[0][0]
    assert len(free.text) > 4
    stop = free.text[2:4]
    cut = engine.generate([prompt], Sampling(temperature=0, max_new_tokens=24, stop=(stop,)))[0][0]
    assert cut.finish_reason == "stop" and stop not in cut.text and free.text.startswith(cut.text)
    assert stop in tok.decode(cut.token_ids, skip_special_tokens=True)  # the tokens that made it are kept


def test_engine_logprobs_match_a_forward_pass(tiny):
    """The sampled tokens' log-probabilities under the raw logits / temperature, whatever processors
    `generate` runs (top-k, a repetition penalty from the generation config) and however it prefills
    (in chunks); the same tokens as without log-probabilities; rows of different lengths in one batch."""
    model, tok = tiny
    engine = HFEngine(model, tok, batch_size=4)
    prompts = [ids_of(tok, [{"role": "user", "content": q}]) for q in ("What is 3 + 4?", "Hi")]
    config = model.generation_config
    saved = (config.repetition_penalty, config.prefill_chunk_size)
    cases = [(1.0, 0, None, None), (0.7, 5, None, None), (1.3, 0, 1.5, 3), (0.0, 0, None, None)]
    lengths = set()
    try:
        for temperature, top_k, penalty, prefill_chunk in cases:
            config.repetition_penalty, config.prefill_chunk_size = penalty, prefill_chunk
            sampling = Sampling(temperature=temperature, top_k=top_k, n=3, max_new_tokens=24, seed=0)
            with_lp = engine.generate(prompts, dataclasses.replace(sampling, logprobs=True))
            plain = engine.generate(prompts, sampling)
            assert [[c.token_ids for c in g] for g in with_lp] == [[c.token_ids for c in g] for g in plain]
            comps = [(p, c) for p, group in zip(prompts, with_lp, strict=True) for c in group]
            lengths |= {len(c.token_ids) for _, c in comps}
            for prompt, comp in comps:
                assert len(comp.logprobs) == len(comp.token_ids)
                mask = [0] * len(prompt) + [1] * len(comp.token_ids)
                batch = collate_rows([prompt + comp.token_ids], [mask], tok)
                with torch.no_grad():
                    lp = token_logprobs(model, batch, temperature or 1.0)[0, len(prompt) - 1 :]
                torch.testing.assert_close(torch.tensor(comp.logprobs), lp, atol=1e-4, rtol=0)
    finally:
        config.repetition_penalty, config.prefill_chunk_size = saved
    assert len(lengths) > 1  # some rows stopped early (padded after eos in their batch)


def collate_rows(rows, masks, tok):
    from rft.rollout import Trajectory

    return collate([Trajectory(0, r, m, 0) for r, m in zip(rows, masks, strict=True)], tok.pad_token_id)


# ---- rollouts ----------------------------------------------------------------------------------------


class Scripted:
    """An engine whose model always says the next scripted line (the env, grader and tokenizer are real)."""

    name = "scripted"

    def __init__(self, tok, replies):
        self.tok, self.replies, self.calls = tok, replies, 0

    def generate(self, prompts, sampling):
        out = []
        for _ in prompts:
            text = self.replies[min(self.calls, len(self.replies) - 1)]
            ids = [*self.tok(text, add_special_tokens=False)["input_ids"], self.tok.eos_token_id]
            out.append([Completion(text, ids, "stop")] * sampling.n)
        self.calls += 1
        return out

    def update_weights(self, model):
        pass

    def close(self):
        pass


def tool_suite(tmp_path):
    path = tmp_path / "tool-v0.yaml"
    path.write_text(
        "id: tool-v0\n"
        "source: {type: generator, name: arithmetic, params: {digits: 3, operands: 2}, size: 20}\n"
        "fields: {id: id, reference: answer}\n"
        'prompt: {system: "Use <python> if you like.", user: "{{ item.question }}"}\n'
        'grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}"}\n'
        "episode: {type: tool, max_turns: 3}\nsplit: 0.0\n"
    )
    return load_suite(path)


def test_multi_turn_tokens_are_the_template_and_mask_only_model_tokens(tmp_path, tiny):
    _, tok = tiny
    env = SuiteEnv(tool_suite(tmp_path))
    _, info = env.reset(options={"index": 0})
    replies = [f"<python>print({info['id']})</python>", f"\\boxed{{{info['reference']}}}"]
    [traj] = run_episodes(Scripted(tok, replies), tok, [env], [0], Sampling())
    assert (
        traj.reward == 1.0
        and traj.turns == 2
        and [m["role"] for m in traj.messages][-3:] == ["assistant", "tool", "assistant"]
    )
    assert tok.decode(traj.ids) == tok.apply_chat_template(traj.messages, tokenize=False)
    model_text = tok.decode([i for i, m in zip(traj.ids, traj.mask, strict=True) if m])
    assert model_text == f"{replies[0]}{tok.eos_token}{replies[1]}{tok.eos_token}"


CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_turn_suffix_with_a_chatml_template(tiny):
    _, base = tiny
    tok = make_tokenizer(["hello world"], vocab_size=120)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.eos_token = "<|im_end|>"
    tok.chat_template = CHATML
    before = [{"role": "user", "content": "q"}]
    reply = "a1"
    ids = [*tok(reply, add_special_tokens=False)["input_ids"], tok.eos_token_id]
    after = [*before, {"role": "assistant", "content": reply}, {"role": "tool", "content": "out"}]
    suffix = turn_suffix_ids(tok, before, Completion(reply, ids, "stop"), after)
    whole = chat_prompt_ids(tok, before) + ids + suffix
    assert tok.decode(whole) == tok.apply_chat_template(after, add_generation_prompt=True, tokenize=False)
    # cut at max_new_tokens: no eos sampled, the template's end-of-turn is the environment's
    suffix = turn_suffix_ids(tok, before, Completion(reply, ids[:-1], "length"), after)
    assert tok.decode(chat_prompt_ids(tok, before) + ids[:-1] + suffix) == tok.decode(whole)


def test_a_template_that_rewrites_earlier_turns_is_refused(tiny):
    _, tok = tiny
    tok = make_tokenizer(["x"], vocab_size=110)
    tok.chat_template = "{{ messages | length }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    before = [{"role": "user", "content": "q"}]
    after = [*before, {"role": "assistant", "content": "a"}, {"role": "user", "content": "again"}]
    with pytest.raises(TemplateMismatch, match="prefix-preserving"):
        turn_suffix_ids(tok, before, Completion("a", [5], "length"), after)


def test_prompt_order_is_a_function_of_seed_and_step():
    seen = [i for step in range(5) for i in prompt_indices(20, 4, step, seed=1)]
    assert sorted(seen) == list(range(20))  # one epoch: every problem once
    assert (
        prompt_indices(20, 4, 7, seed=1)
        == prompt_indices(20, 4, 7, seed=1)
        != prompt_indices(20, 4, 7, seed=2)
    )


def test_shared_prefix_logprobs_equal_the_plain_ones(tiny):
    from rft.batch import shared_prefix_logprobs

    model, tok = tiny
    prompts = [
        ids_of(tok, [{"role": "user", "content": q}]) for q in ("What is 1 + 2?", "Hi", "What is 12 + 5?")
    ]
    comps = HFEngine(model, tok).generate(prompts, Sampling(n=3, max_new_tokens=9, seed=1))
    trajs = []
    for g, (p, cs) in enumerate(zip(prompts, comps, strict=True)):
        for c in cs:  # a second "turn" after an environment gap, as in multi-turn episodes
            env = tok("ok", add_special_tokens=False)["input_ids"]
            ids = p + c.token_ids + env + c.token_ids[:3]
            mask = [0] * len(p) + [1] * len(c.token_ids) + [0] * len(env) + [1] * len(c.token_ids[:3])
            trajs.append(Trajectory(g, ids, mask, len(p)))
    batch = collate(trajs, tok.pad_token_id)
    lens = [t.prompt_len for t in trajs]
    for temperature in (1.0, 0.6):
        plain = token_logprobs(model, batch, temperature)
        shared = shared_prefix_logprobs(model, batch, lens, temperature)
        assert shared.shape == plain.shape
        assert torch.allclose(plain * batch.mask, shared * batch.mask, atol=1e-5)
    grads = []
    for fn in (lambda: token_logprobs(model, batch), lambda: shared_prefix_logprobs(model, batch, lens)):
        model.zero_grad()
        (fn() * batch.mask).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    model.zero_grad()
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(*grads, strict=True))


def test_process_engine_samples_like_the_in_process_one_and_takes_new_weights(tiny):
    from rft.engines.process import ProcessEngine

    model, tok = tiny
    prompts = [ids_of(tok, [{"role": "user", "content": q}]) for q in ("What is 1 + 2?", "Hi")]
    sampling = Sampling(n=3, max_new_tokens=8, seed=5, logprobs=True)
    engine = ProcessEngine(model, tok)
    try:
        here = HFEngine(model, tok).generate(prompts, sampling)
        there = engine.generate(prompts, sampling)
        assert [[c.token_ids for c in row] for row in there] == [[c.token_ids for c in row] for row in here]
        changed = make_model(tok, seed=1)  # other weights, same shapes
        engine.update_weights(changed)
        greedy = Sampling(temperature=0, max_new_tokens=8)
        assert engine.generate(prompts, greedy) == HFEngine(changed, tok).generate(prompts, greedy)
    finally:
        engine.close()
    with pytest.raises(RuntimeError, match="died"):
        engine.generate(prompts, sampling)
