"""Thinking models: chat template kwargs (suite and recipe) reach every render, and multi-turn episodes on
real chat templates (tests/data/chat_templates/, see its README) give the tokens the model sampled plus the
environment's, with Qwen3's own template refused clearly and rft's prefix-preserving copy accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _scripted import Scripted
from hypothesis import given, settings
from hypothesis import strategies as st

from rft.chat import ChatConfig, load_template, recognise, render_chat, use_chat_template
from rft.config import ConfigError, load_config
from rft.engines import Completion, Sampling
from rft.envs import SuiteEnv, SuiteError, load_suite
from rft.rl.grpo import GRPOConfig
from rft.rollout import TemplateMismatch, chat_prompt_ids, run_episodes, turn_suffix_ids
from rft.tiny import make_tokenizer

DATA = Path(__file__).parent / "data" / "chat_templates"
THINK = "<think>\nFirst 2 + 2 = 5, the answer is 5.\n</think>\n\n"


def real_tokenizer(name: str):
    """The tiny tokenizer carrying a real model's chat template and its special tokens."""
    cfg = json.loads((DATA / f"{name}_tokenizer_config.json").read_text())
    tok = make_tokenizer(["What is 2 + 2? <think> \\boxed{4} </think>"] * 5, vocab_size=140)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]})
    tok.eos_token, tok.pad_token = cfg["eos_token"], cfg["pad_token"]
    tok.chat_template = cfg["chat_template"]
    return tok


QWEN3_PRESERVING = use_chat_template(real_tokenizer("qwen3"), ChatConfig(template="qwen3-preserving"))


def feedback_suite(tmp_path, kwargs: str = ""):
    path = tmp_path / "think-v0.yaml"
    extra = f", chat_template_kwargs: {kwargs}" if kwargs else ""
    path.write_text(
        "id: think-v0\n"
        "source: {type: generator, name: arithmetic, params: {digits: 1, operands: 2}, size: 10}\n"
        "fields: {id: id, reference: answer}\n"
        f'prompt: {{system: "Answer in \\\\boxed{{}}.", user: "{{{{ item.question }}}}"{extra}}}\n'
        'grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}"}\n'
        "episode: {type: feedback, max_turns: 2}\nsplit: 0.0\n"
    )
    return load_suite(path)


def two_turns(tok, suite, thinking: bool, **kw):
    """A two-turn feedback episode: a wrong answer (with reasoning when `thinking`), then the right one."""
    env = SuiteEnv(suite)
    _, info = env.reset(options={"index": 0})
    wrong, right = f"\\boxed{{{int(info['reference']) + 1}}}", f"\\boxed{{{info['reference']}}}"
    replies = [THINK + wrong, THINK + right] if thinking else [wrong, right]
    [traj] = run_episodes(Scripted(tok, replies), tok, [env], [0], Sampling(), **kw)
    return traj, replies


def test_qwen3_as_shipped_is_refused_with_what_to_set(tmp_path):
    tok = real_tokenizer("qwen3")
    assert recognise(tok.chat_template) == "qwen3-preserving"
    with pytest.raises(TemplateMismatch, match=r"chat: \{template: qwen3-preserving\}"):
        two_turns(tok, feedback_suite(tmp_path), thinking=True)


def test_an_unknown_rewriting_template_is_refused_with_the_general_fix():
    tok = real_tokenizer("qwen3")
    tok.chat_template = "{{ messages | length }}" + tok.chat_template  # no longer Qwen3's own
    assert recognise(tok.chat_template) is None
    before = [{"role": "user", "content": "q"}]
    after = [*before, {"role": "assistant", "content": "a"}, {"role": "user", "content": "again"}]
    with pytest.raises(TemplateMismatch, match=r"path/to/template.jinja"):
        turn_suffix_ids(tok, before, Completion("a", [5], "length"), after)


@pytest.mark.parametrize("thinking", [True, False])
def test_preserving_qwen3_episode_is_sampled_plus_environment_tokens(tmp_path, thinking):
    tok = use_chat_template(real_tokenizer("qwen3"), ChatConfig(template="qwen3-preserving"))
    kwargs = {} if thinking else {"enable_thinking": False}
    suite = feedback_suite(tmp_path, "" if thinking else "{enable_thinking: false}")
    traj, replies = two_turns(tok, suite, thinking)
    assert traj.turns == 2 and traj.reward == 1.0
    assert [m["role"] for m in traj.messages][-3:] == ["assistant", "user", "assistant"]
    # the tokens are the whole conversation rendered again (less the newline after the last <|im_end|>, which
    # the model never samples): training sees what sampling saw
    assert tok.decode(traj.ids) + "\n" == render_chat(tok, traj.messages, **kwargs)
    model = tok.decode([i for i, m in zip(traj.ids, traj.mask, strict=True) if m])
    assert model == f"{replies[0]}<|im_end|>{replies[1]}<|im_end|>"
    assert tok.decode(traj.ids).count(THINK) == (2 if thinking else 0)  # the first turn's reasoning kept
    assert tok.decode(traj.ids).count("<think>\n\n</think>\n\n") == (0 if thinking else 2)


def test_preserving_qwen3_renders_prompts_and_the_last_turn_as_qwen3_does():
    qwen3 = real_tokenizer("qwen3")
    ours = use_chat_template(real_tokenizer("qwen3"), ChatConfig(template="qwen3-preserving"))
    assert ours.chat_template != qwen3.chat_template
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}]
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    for kw in ({}, {"enable_thinking": False}, {"enable_thinking": True}, {"tools": tools}):
        assert render_chat(ours, chat, add_generation_prompt=True, **kw) == render_chat(
            qwen3, chat, add_generation_prompt=True, **kw
        )
    final = [*chat, {"role": "assistant", "content": THINK + "\\boxed{4}"}]
    assert render_chat(ours, final) == render_chat(qwen3, final)
    separate = [*chat, {"role": "assistant", "content": "\\boxed{4}", "reasoning_content": "2 + 2 = 4"}]
    assert render_chat(ours, separate) == render_chat(qwen3, separate)
    # where they differ: an earlier turn's reasoning, which Qwen3 drops
    longer = [*final, {"role": "user", "content": "And 3 + 3?"}]
    assert THINK in render_chat(ours, longer) and THINK not in render_chat(qwen3, longer)


def test_enable_thinking_reaches_the_template_from_the_suite_and_the_recipe(tmp_path):
    tok = real_tokenizer("qwen3")
    chat = [{"role": "user", "content": "What is 2 + 2?"}]
    on = tok.decode(chat_prompt_ids(tok, chat))
    off = tok.decode(chat_prompt_ids(tok, chat, enable_thinking=False))
    assert off == on + "<think>\n\n</think>\n\n" and on.endswith("<|im_start|>assistant\n")

    ours = use_chat_template(real_tokenizer("qwen3"), ChatConfig(template="qwen3-preserving"))

    def first_prompt(suite, **kw):  # the episode goes on to a second turn: a template that preserves prefixes
        env = SuiteEnv(suite)
        env.reset(options={"index": 0})
        [traj] = run_episodes(Scripted(ours, ["\\boxed{0}"]), ours, [env], [0], Sampling(), **kw)
        return ours.decode(traj.ids[: traj.prompt_len])

    (tmp_path / "off").mkdir()
    plain, suite_off = feedback_suite(tmp_path), feedback_suite(tmp_path / "off", "{enable_thinking: false}")
    assert first_prompt(suite_off).endswith("<think>\n\n</think>\n\n")
    assert first_prompt(plain, chat_template_kwargs={"enable_thinking": False}).endswith("</think>\n\n")
    assert first_prompt(plain).endswith("assistant\n")
    # the suite's kwargs win key by key over the recipe's
    assert first_prompt(suite_off, chat_template_kwargs={"enable_thinking": True}).endswith("</think>\n\n")
    assert ChatConfig(kwargs={"enable_thinking": True, "x": 1}).merged({"enable_thinking": False}) == {
        "enable_thinking": False,
        "x": 1,
    }


def test_qwen2_5_already_preserves_prefixes(tmp_path):
    tok = real_tokenizer("qwen2_5")
    assert recognise(tok.chat_template) is None
    traj, replies = two_turns(tok, feedback_suite(tmp_path), thinking=False)
    assert traj.turns == 2 and tok.decode(traj.ids) + "\n" == render_chat(tok, traj.messages)
    assert tok.decode([i for i, m in zip(traj.ids, traj.mask, strict=True) if m]) == "<|im_end|>".join(
        [*replies, ""]
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ("[enable_thinking]", "must be a mapping"),
        ("{tokenize: true}", "set by rft itself"),
        ("{'bad key': 1}", "not a template variable name"),
    ],
)
def test_suite_template_kwargs_are_validated(tmp_path, kwargs, message):
    with pytest.raises(SuiteError, match=message):
        feedback_suite(tmp_path, kwargs)


def test_recipe_chat_options_are_validated(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: m\nsuite: s\n")
    cfg = load_config(
        GRPOConfig, recipe, ["chat.kwargs={enable_thinking: false}", "chat.template=qwen3-preserving"]
    )
    assert cfg.chat.kwargs == {"enable_thinking": False} and cfg.chat.template == "qwen3-preserving"
    with pytest.raises((ConfigError, ValueError), match="qwen3-preserving"):
        load_config(GRPOConfig, recipe, ["chat.template=qwen9"])
    with pytest.raises((ConfigError, ValueError), match="not a JSON value"):
        ChatConfig(kwargs={"when": object()})
    jinja = tmp_path / "mine.jinja"
    jinja.write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    assert load_template(str(jinja)) == jinja.read_text()


class Recorder:
    """An HTTP client that records what would be sent (the served model classes are the real ones)."""

    base_url = "http://server/v1"

    def __init__(self):
        self.bodies = []

    def post(self, path, body):
        self.bodies.append((path, body))
        return {"choices": [{"index": 0, "message": {"content": "4"}, "text": "4", "finish_reason": "stop"}]}


def test_served_models_carry_template_kwargs():
    from rft.engines.served import ChatModel, CompletionsModel

    chat = [{"role": "user", "content": "What is 2 + 2?"}]
    client = Recorder()
    ChatModel(client, "m", template_kwargs={"enable_thinking": False}).reply(chat, Sampling())
    ChatModel(client, "m").reply(chat, Sampling())
    assert client.bodies[0][1]["chat_template_kwargs"] == {"enable_thinking": False}
    assert "chat_template_kwargs" not in client.bodies[1][1]
    tok = real_tokenizer("qwen3")
    off = CompletionsModel(client, "m", tok, template_kwargs={"enable_thinking": False}).prompt(chat)
    assert off == CompletionsModel(client, "m", tok).prompt(chat) + "<think>\n\n</think>\n\n"


def test_grpo_recipe_chat_options_reach_multi_turn_rollouts_and_checkpoints(tmp_path):
    from rft.rl.grpo import train
    from rft.tiny import make_model

    tok = real_tokenizer("qwen3")
    model_dir = tmp_path / "m"
    make_model(tok, hidden=32, layers=1, heads=2).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    suite = feedback_suite(tmp_path)
    args = [f"model={model_dir}", f"suite={suite.path}", "steps=1", "prompts_per_step=2", "group_size=2",
            "gen.max_new_tokens=6", "eval.n=0", "grader_workers=0", "chat.kwargs={enable_thinking: false}"]  # fmt: skip
    with pytest.raises(
        TemplateMismatch, match="qwen3-preserving"
    ):  # a random model's answers are wrong: 2 turns
        train(load_config(GRPOConfig, None, [*args, f"out={tmp_path / 'plain'}"]))
    train(load_config(GRPOConfig, None, [*args, f"out={tmp_path / 'run'}", "chat.template=qwen3-preserving"]))
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert rows and all(len(r["completion"]) >= 2 for r in rows)  # assistant, feedback, ...: multi-turn
    ckpt = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    saved = json.loads((ckpt / "model" / "tokenizer_config.json").read_text())
    template = saved.get("chat_template") or (ckpt / "model" / "chat_template.jinja").read_text()
    assert template == load_template("qwen3-preserving")


PIECES = ["<think>", "</think>", "\n", "\n\n", " ", "2 + 2", "\\boxed{4}", "<|im_start|>user", "x"]


@settings(max_examples=60, deadline=None)
@given(
    replies=st.lists(st.lists(st.sampled_from(PIECES), max_size=8).map("".join), min_size=1, max_size=3),
    thinking=st.booleans(),
    stopped=st.booleans(),
)
def test_any_replies_build_the_conversation_turn_by_turn(replies, thinking, stopped):
    """Whatever the model writes (half-open think tags, blank lines, nothing), the turn-by-turn tokens of a
    conversation with the preserving template decode to the whole conversation rendered again."""
    tok = QWEN3_PRESERVING
    kw = {} if thinking else {"enable_thinking": False}
    msgs = [{"role": "user", "content": "What is 2 + 2?"}]
    ids = chat_prompt_ids(tok, msgs, **kw)
    for k, reply in enumerate(replies):
        sampled = tok(reply, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if stopped else [])
        after = [*msgs, {"role": "assistant", "content": reply}, {"role": "user", "content": f"turn {k}"}]
        ids += sampled + turn_suffix_ids(tok, msgs, Completion(reply, sampled, "stop" if stopped else "length"),
                                         after, **kw)  # fmt: skip
        msgs = after
    assert tok.decode(ids) == render_chat(tok, msgs, add_generation_prompt=True, **kw)
