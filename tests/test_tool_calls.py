"""Function calling: calls parsed per template family, schemas from typed functions, `tools` episodes, and
round trips through the real chat templates of Qwen2.5-Instruct, Llama-3.1-Instruct and Mistral-7B-Instruct-v0.3
(tests/data/chat_templates, see SOURCES.md there) on the tiny tokenizer."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Literal

import gymnasium as gym
import pytest
from _scripted import Scripted
from gymnasium.utils.env_checker import check_env

from rft.engines import Completion, Sampling
from rft.envs import EnvPool, SuiteEnv, load_suite, register_suite
from rft.envs.episode import Episode
from rft.envs.tools import (
    ToolOutput,
    ToolSpec,
    check_arguments,
    detect_tool_format,
    function_spec,
    make_tool_provider,
    parse_tool_calls,
    register_tool_provider,
    tool_provider_keys,
)
from rft.envs.tools.parse import ToolCall
from rft.envs.tools.registry import ToolSettings
from rft.rl.metrics import tool_metrics
from rft.rollout import TemplateMismatch, chat_prompt_ids, run_episodes, turn_suffix_ids
from rft.tiny import make_tokenizer

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"

# ---- parsing, per family ---------------------------------------------------------------------------------


def call(name: str, **arguments) -> ToolCall:
    return ToolCall(name, arguments)


@pytest.mark.parametrize(
    "text, calls, errors, content",
    [
        (
            '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>',
            [call("add", a=1, b=2)],
            0,
            "",
        ),
        (
            'Let me add.\n<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>\n'
            '<tool_call>{"name": "convert", "arguments": {"value": 3.5, "unit": "km"}}</tool_call>',
            [call("add", a=1, b=2), call("convert", value=3.5, unit="km")],
            0,
            "Let me add.",
        ),
        ('<tool_call>{"name": "add", "arguments": "{\\"a\\": 1}"}</tool_call>', [call("add", a=1)], 0, ""),
        ('<tool_call>{"name": "add", "arguments": {"a": 1,}}</tool_call>', [], 1, ""),  # bad JSON
        ('<tool_call>{"arguments": {}}</tool_call>', [], 1, ""),  # no name
        ('<tool_call>{"name": "add", "arguments": [1, 2]}</tool_call>', [], 1, ""),  # arguments not an object
        ('<tool_call>{"name": "add", "arguments": {}}', [], 1, ""),  # not closed
        ('<tool_call>{"name": "a"} trailing</tool_call>', [], 1, ""),
        ("The answer is \\boxed{3}.", [], 0, "The answer is \\boxed{3}."),
        # a call inside the reasoning is not a call
        ('<think><tool_call>{"name": "add", "arguments": {}}</tool_call></think>\\boxed{3}', [], 0, None),
    ],
)
def test_hermes_calls(text, calls, errors, content):
    parsed = parse_tool_calls(text, "hermes")
    assert list(parsed.calls) == calls and len(parsed.errors) == errors
    assert parsed.attempted == bool(calls or errors)
    if content is not None:
        assert parsed.content == content


@pytest.mark.parametrize(
    "text, calls, errors",
    [
        ('{"name": "add", "parameters": {"a": 1, "b": 2}}', [call("add", a=1, b=2)], 0),
        ('<|python_tag|>{"name": "add", "parameters": {"a": 1, "b": 2}}', [call("add", a=1, b=2)], 0),
        (
            '{"name": "add", "parameters": {"a": 1, "b": 2}}; {"name": "add", "parameters": {"a": 3, "b": 4}}',
            [call("add", a=1, b=2), call("add", a=3, b=4)],
            0,
        ),
        ('{"name": "add", "arguments": {"a": 1}}', [call("add", a=1)], 0),  # some fine-tunes say arguments
        ('<|python_tag|>{"name": "add", "parameters": {"a": 1', [], 1),  # cut off
        ('{"name": "add", "parameters": {"a": 1}} and then', [call("add", a=1)], 1),
        ("The answer is 3.", [], 0),
        ('{"answer": 3}', [], 0),  # a JSON answer that is not a call
    ],
)
def test_llama3_calls(text, calls, errors):
    parsed = parse_tool_calls(text, "llama3")
    assert list(parsed.calls) == calls and len(parsed.errors) == errors


@pytest.mark.parametrize(
    "text, calls, errors, content",
    [
        ('[TOOL_CALLS] [{"name": "add", "arguments": {"a": 1, "b": 2}}]', [call("add", a=1, b=2)], 0, ""),
        (
            '[TOOL_CALLS] [{"name": "add", "arguments": {"a": 1}}, {"name": "add", "arguments": {"a": 2}}]',
            [call("add", a=1), call("add", a=2)],
            0,
            "",
        ),
        ('I will add. [TOOL_CALLS] [{"name": "add", "arguments": {}}]', [call("add")], 0, "I will add."),
        ('[TOOL_CALLS] [{"name": "add", "arguments": {}}, {"arguments": {}}]', [call("add")], 1, ""),
        ('[TOOL_CALLS] [{"name": "add", "arguments": {', [], 1, ""),
        ("[TOOL_CALLS] 42", [], 1, ""),
        ("No calls: \\boxed{4}", [], 0, "No calls: \\boxed{4}"),
    ],
)
def test_mistral_calls(text, calls, errors, content):
    parsed = parse_tool_calls(text, "mistral")
    assert list(parsed.calls) == calls and len(parsed.errors) == errors and parsed.content == content


def test_auto_reads_the_markers_and_bad_formats_are_refused():
    assert parse_tool_calls('<tool_call>{"name": "f", "arguments": {}}</tool_call>').calls == (call("f"),)
    assert parse_tool_calls('[TOOL_CALLS] [{"name": "f", "arguments": {}}]').calls == (call("f"),)
    assert parse_tool_calls('{"name": "f", "parameters": {}}').calls == (call("f"),)
    with pytest.raises(ValueError, match="tool_format must be one of"):
        parse_tool_calls("x", "json")


@pytest.mark.parametrize(
    "file, family",
    [
        ("qwen2_5_instruct.jinja", "hermes"),
        ("llama3_1_instruct.jinja", "llama3"),
        ("mistral_v0_3_instruct.jinja", "mistral"),
    ],
)
def test_the_family_is_detected_from_the_real_templates(file, family):
    assert detect_tool_format((TEMPLATES / file).read_text()) == family


def test_a_template_without_tools_asks_for_tool_format():
    with pytest.raises(ValueError, match="set episode.tool_format"):
        detect_tool_format("{% for m in messages %}{{ m['content'] }}{% endfor %}")


# ---- schemas of typed functions ----------------------------------------------------------------------------


def convert(
    value: float, unit: Literal["km", "mi"], precision: int | None = None, tags: list[str] | None = None
) -> str:
    """Convert a distance.

    Longer text that is not the description.

    Args:
        value: The distance.
        unit: Its unit; the result is in
            the other one.
        precision (int): Digits kept.
    """
    return str(value)


def test_function_schema_from_signature_and_docstring():
    spec = function_spec(convert)
    assert spec.name == "convert" and spec.description == "Convert a distance."
    p = spec.parameters
    assert p["required"] == ["value", "unit"]
    assert p["properties"]["value"] == {"type": "number", "description": "The distance."}
    assert p["properties"]["unit"] == {
        "type": "string",
        "enum": ["km", "mi"],
        "description": "Its unit; the result is in the other one.",
    }
    assert p["properties"]["precision"] == {"type": ["integer", "null"], "description": "Digits kept."}
    assert p["properties"]["tags"] == {"type": ["array", "null"], "items": {"type": "string"}}
    assert spec.schema()["type"] == "function" and spec.schema()["function"]["name"] == "convert"


def test_functions_that_have_no_schema_are_refused():
    def untyped(x):
        return x

    def star(*args: int) -> int:
        return 0

    def odd(x: set[int]) -> int:
        return 0

    for fn, msg in [
        (untyped, "annotate parameter 'x'"),
        (star, "plain or keyword"),
        (odd, "has no JSON schema"),
    ]:
        with pytest.raises(TypeError, match=msg):
            function_spec(fn)


@pytest.mark.parametrize(
    "arguments, wrong",
    [
        ({"value": 3, "unit": "km"}, []),
        ({"value": 3.5, "unit": "mi", "precision": None, "tags": ["a"]}, []),
        ({"unit": "km"}, ["missing required argument 'value'"]),
        ({"value": "3", "unit": "km"}, ["value: expected number"]),
        ({"value": True, "unit": "km"}, ["value: expected number"]),  # a bool is not a number here
        ({"value": 3, "unit": "m"}, ["unit: 'm' is not one of"]),
        ({"value": 3, "unit": "km", "precision": 1.5}, ["precision: expected integer or null"]),
        ({"value": 3, "unit": "km", "tags": [1]}, ["tags[0]: expected string"]),
        ({"value": 3, "unit": "km", "speed": 1}, ["unknown arguments ['speed']"]),
    ],
)
def test_arguments_are_checked_against_the_schema(arguments, wrong):
    errors = check_arguments(function_spec(convert).parameters, arguments)
    assert len(errors) == len(wrong) and all(e.startswith(w) for e, w in zip(errors, wrong, strict=True))


# ---- the provider registry ------------------------------------------------------------------------------------


class Counter:
    """A stateful tool of a provider registered in the test: counts its calls, knows when it was closed."""

    opened: list[Counter] = []

    def __init__(self) -> None:
        self.spec = ToolSpec("count", "Count calls.", {"type": "object", "properties": {}})
        self.n, self.closed = 0, False
        Counter.opened.append(self)

    def call(self, arguments):
        self.n += 1
        return ToolOutput(str(self.n))

    def close(self):
        self.closed = True


class CounterProvider:
    def __init__(self, options, settings: ToolSettings) -> None:
        self.options, self.settings = options, settings

    def specs(self):
        return [ToolSpec("count", "Count calls.", {"type": "object", "properties": {}})]

    def open(self):
        return [Counter()]


register_tool_provider("counter_for_tests", CounterProvider, replace=True)


def test_providers_resolve_by_key():
    assert {"python_exec", "function", "counter_for_tests"} <= set(tool_provider_keys())
    p = make_tool_provider({"counter_for_tests": {"x": 1}}, ToolSettings(timeout=2.0))
    assert isinstance(p, CounterProvider) and p.options == {"x": 1} and p.settings.timeout == 2.0
    with pytest.raises(ValueError, match="unknown tool provider 'mcpx'"):
        make_tool_provider({"mcpx": {}}, ToolSettings())
    with pytest.raises(ValueError, match="one key"):
        make_tool_provider({"python_exec": {}, "function": "a:b"}, ToolSettings())
    with pytest.raises(ValueError, match="already registered"):
        register_tool_provider("counter_for_tests", lambda o, s: CounterProvider(o, s))
    with pytest.raises(ValueError, match="cannot import"):
        make_tool_provider({"function": "no_such_module_xyz:f"}, ToolSettings())
    with pytest.raises(ValueError, match="module:callable"):
        make_tool_provider({"function": "_tool_functions.add"}, ToolSettings())


# ---- tools episodes ---------------------------------------------------------------------------------------------


def suite(tools: list, **episode) -> dict:
    return {
        "id": "adder-tools-v0",
        "source": {
            "type": "generator",
            "name": "arithmetic",
            "params": {"digits": 2, "operands": 2},
            "size": 20,
        },
        "fields": {"id": "id", "reference": "answer"},
        "prompt": {"system": "Use the tools.", "user": "{{ item.question }}"},
        "grader": {"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.reference }}"},
        "split": 0.0,
        "episode": {"type": "tools", "max_turns": 3, "tools": tools, **episode},
    }


FUNCTIONS = [
    {"function": "_tool_functions:add"},
    {"function": {"path": "_tool_functions:divide", "name": "div"}},
]


def hermes(*calls: tuple[str, dict]) -> str:
    return "\n".join(
        f"<tool_call>\n{json.dumps({'name': n, 'arguments': a})}\n</tool_call>" for n, a in calls
    )


def test_episode_validation_for_tools():
    with pytest.raises(ValueError, match="needs episode.tools"):
        Episode.from_spec({"type": "tools"})
    with pytest.raises(ValueError, match="for type: tools episodes"):
        Episode.from_spec({"type": "tool", "tools": [{"python_exec": {}}]})
    with pytest.raises(ValueError, match="tool_format must be one of"):
        Episode.from_spec({"type": "tools", "tools": [{"python_exec": {}}], "tool_format": "xml"})
    with pytest.raises(ValueError, match="unknown keys \\['providers'\\]"):
        Episode.from_spec({"type": "tools", "tools": [{"python_exec": {}}], "providers": []})
    dup = [{"function": "_tool_functions:add"}, {"function": "_tool_functions:add"}]
    with pytest.raises(Exception, match="two tools are named \\['add'\\]"):
        SuiteEnv(load_suite(suite(dup)))


def test_function_tools_several_calls_per_turn_errors_and_the_graded_answer():
    env = SuiteEnv(load_suite(suite(FUNCTIONS, tool_format="hermes")))
    _, info = env.reset(options={"index": 0})
    assert (
        [t["function"]["name"] for t in info["tools"]]
        == ["add", "div"]
        == [t["function"]["name"] for t in env.tool_schemas]
    )
    reply = "Two sums." + hermes(
        ("add", {"a": 2, "b": 3}), ("div", {"a": 1, "b": 0}), ("add", {"a": "x", "b": 1})
    )
    reply += (
        '\n<tool_call>{"name": "nope", "arguments": {}}</tool_call><tool_call>{"name": "add", </tool_call>'
    )
    obs, reward, term, trunc, step = env.step(reply)
    msgs = json.loads(obs)
    assert (reward, term, trunc) == (0.0, False, False)
    assistant, *tools = msgs[-6:]
    names = [c["function"]["name"] for c in assistant["tool_calls"]]
    assert assistant["content"] == "Two sums." and names == ["add", "div", "add", "nope", ""]  # "": unparsed
    assert assistant["tool_calls"][0]["function"]["arguments"] == {"a": 2, "b": 3}
    assert [m["role"] for m in tools] == ["tool"] * 5
    assert [m["tool_call_id"] for m in tools] == [c["id"] for c in assistant["tool_calls"]]
    assert tools[0]["content"] == "5" and tools[0]["name"] == "add"
    assert "ZeroDivisionError" in tools[1]["content"]
    assert tools[2]["content"].startswith("add: a: expected integer")
    assert "unknown tool 'nope'" in tools[3]["content"] and "could not be read" in tools[4]["content"]
    assert step["tool_stats"] == {"calls": 4, "errors": 3, "parse_failures": 1}
    assert [c["kind"] for c in step["tool_calls"]] == ["call", "call", "arguments", "unknown", "parse"]
    obs, reward, term, trunc, step = env.step(f"\\boxed{{{info['reference']}}}")
    assert (reward, term, trunc) == (1.0, True, False) and step["grade"]["status"] == "ok"
    assert step["tool_stats"] == {"calls": 4, "errors": 3, "parse_failures": 1}


def test_python_exec_tool_runs_sandboxed_and_calls_on_the_last_turn_are_graded():
    env = SuiteEnv(load_suite(suite([{"python_exec": {}}], max_turns=2, tool_timeout=2)))
    _, info = env.reset(options={"index": 1})
    code = "import os\nprint(6 * 7, os.getuid() == 0 or 'ok')"
    _, _, _, _, step = env.step(hermes(("python_exec", {"code": code})))
    [result] = step["tool_calls"]
    assert result["output"].startswith("42") and not result["is_error"] and result["outcome"] == "exited"
    # the last turn: a call is not run, the message is graded (no answer in it)
    obs, reward, term, _, step = env.step(hermes(("python_exec", {"code": "print(1)"})))
    assert term and reward == 0.0 and "grade" in step and "tool_calls" not in step


def test_a_failing_python_program_is_an_error_the_model_sees():
    env = SuiteEnv(load_suite(suite([{"python_exec": {}}], tool_timeout=1)))
    env.reset(options={"index": 0})
    _, _, term, _, step = env.step(hermes(("python_exec", {"code": "raise ValueError('boom')"})))
    assert (
        not term
        and step["tool_calls"][0]["is_error"]
        and "ValueError: boom" in step["tool_calls"][0]["output"]
    )
    assert step["tool_stats"]["errors"] == 1


def test_tools_are_opened_per_episode_and_closed_on_every_path():
    Counter.opened.clear()
    env = SuiteEnv(load_suite(suite([{"counter_for_tests": {}}])))
    env.reset(options={"index": 0})
    _, _, _, _, step = env.step(hermes(("count", {}), ("count", {})))
    assert [c["output"] for c in step["tool_calls"]] == ["1", "2"]  # state within the episode
    env.reset(options={"index": 0})  # a new episode: the old tool is closed, a fresh one starts at 0
    _, _, _, _, step = env.step(hermes(("count", {})))
    assert (
        step["tool_calls"][0]["output"] == "1" and Counter.opened[0].closed and not Counter.opened[1].closed
    )
    env.step("\\boxed{0}")  # the episode ends: closed
    assert Counter.opened[1].closed
    env.reset(options={"index": 0})
    env.close()
    assert all(c.closed for c in Counter.opened) and len(Counter.opened) == 3


def test_a_tool_that_breaks_ends_the_step_masked():
    class Broken(CounterProvider):
        def open(self):
            tool = Counter()
            tool.call = lambda arguments: (_ for _ in ()).throw(OSError("server died"))  # type: ignore[method-assign]
            return [tool]

    register_tool_provider("broken_for_tests", Broken, replace=True)
    env = SuiteEnv(load_suite(suite([{"broken_for_tests": {}}])))
    env.reset(options={"index": 0})
    _, reward, term, _, step = env.step(hermes(("count", {})))
    assert (
        term and reward == 0.0 and step["grade_failed"] and "server died" in step["grade"]["details"]["error"]
    )
    assert Counter.opened[-1].closed


def test_env_pool_runs_a_turns_calls_concurrently():
    import time

    names = ["s1", "s2", "s3", "s4"]
    env = SuiteEnv(
        load_suite(suite([{"function": {"path": "_tool_functions:slow", "name": n}} for n in names]))
    )
    with EnvPool([env], executor="inline", tool_threads=4) as pool:
        pool.reset(seed=0)
        start = time.monotonic()
        out = pool.step([hermes(*[(n, {"seconds": 0.3}) for n in names])])
        took = time.monotonic() - start
    assert [c["output"] for c in out.infos[0]["tool_calls"]] == ["0.3"] * 4
    assert took < 1.0  # four tools' 0.3 s calls at once, not 1.2 s one after another


def test_gymnasium_make_and_check_env_on_a_tools_suite(tmp_path):
    import yaml

    path = tmp_path / "adder-tools-v0.yaml"
    path.write_text(yaml.safe_dump(suite([*FUNCTIONS, {"python_exec": {}}])))
    env_id = register_suite(path)
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert set(obs) <= set(string.printable) and info["tools"]
    obs, *_ = env.step(hermes(("add", {"a": 1, "b": 2})))
    assert json.loads(obs)[-1] == {"role": "tool", "tool_call_id": "call00000", "name": "add", "content": "3"}
    env.close()
    from rft.envs.check import check_task

    report = check_task(env_id, n=2)
    failed = [(c.name, c.detail) for c in report.checks if not c.ok]
    names = [c.name for c in report.checks]
    assert not failed and "a malformed tool call is answered with a tool message" in names
    assert "a python_exec call runs and its output comes back" in names


def test_tool_metrics_from_episode_stats():
    from rft.rollout import Trajectory

    trajs = [Trajectory(0, [], [], 0, info={"tool_stats": {"calls": c, "errors": e, "parse_failures": p}})
             for c, e, p in [(2, 1, 0), (0, 0, 1), (2, 0, 1)]]  # fmt: skip
    assert tool_metrics(trajs) == {
        "tools/calls_per_episode": 4 / 3,
        "tools/error_rate": 1 / 4,
        "tools/parse_failures": 2 / 3,
    }
    assert tool_metrics([Trajectory(0, [], [], 0)]) == {}


# ---- round trips through the real chat templates -------------------------------------------------------------

FAMILIES = {
    "hermes": (
        "qwen2_5_instruct.jinja",
        {"eos_token": "<|im_end|>", "additional_special_tokens": ["<|im_start|>", "<|endoftext|>"]},
    ),
    "llama3": (
        "llama3_1_instruct.jinja",
        {
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|eot_id|>",
            "additional_special_tokens": [
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|python_tag|>",
                "<|eom_id|>",
            ],
        },
    ),
    "mistral": (
        "mistral_v0_3_instruct.jinja",
        {
            "bos_token": "<s>",
            "eos_token": "</s>",
            "additional_special_tokens": [
                "[INST]",
                "[/INST]",
                "[TOOL_CALLS]",
                "[AVAILABLE_TOOLS]",
                "[/AVAILABLE_TOOLS]",
                "[TOOL_RESULTS]",
                "[/TOOL_RESULTS]",
            ],
        },
    ),
}


def family_tokenizer(family: str):
    file, specials = FAMILIES[family]
    tok = make_tokenizer(
        ['{"name": "add", "arguments": {"a": 12, "b": 5}} The answer is \\boxed{17}'] * 10, 200
    )
    tok.add_special_tokens(specials)
    tok.chat_template = (TEMPLATES / file).read_text()
    return tok


def reply_in(family: str, calls: list[tuple[str, dict]]) -> str:
    if family == "hermes":
        return hermes(*calls)
    if family == "llama3":
        return "; ".join(json.dumps({"name": n, "parameters": a}) for n, a in calls)
    return "[TOOL_CALLS] " + json.dumps([{"name": n, "arguments": a} for n, a in calls])


@pytest.mark.parametrize("family", ["hermes", "llama3", "mistral"])
def test_tools_render_and_calls_parse_back_through_the_real_template(family):
    tok = family_tokenizer(family)
    env = SuiteEnv(load_suite(suite(FUNCTIONS)))
    env.use_chat_template(tok.chat_template)
    assert env.tool_format == family
    _, info = env.reset(options={"index": 0})
    prompt = tok.decode(chat_prompt_ids(tok, env.messages, env.tool_schemas))
    assert '"name": "add"' in prompt and "Add two integers." in prompt and '"div"' in prompt
    calls = (
        [("add", {"a": 12, "b": 5})]
        if family == "llama3"
        else [("add", {"a": 12, "b": 5}), ("div", {"a": 1, "b": 4})]
    )
    _, _, _, _, step = env.step(reply_in(family, calls))
    assert [(c["name"], c["arguments"]) for c in step["tool_calls"]] == calls
    assert [c["output"] for c in step["tool_calls"]] == ["17", "0.25"][: len(calls)]
    # the structured turn renders through the template (Llama 3.1 takes one call per turn)
    text = tok.apply_chat_template(
        env.messages, tools=env.tool_schemas, add_generation_prompt=True, tokenize=False
    )
    assert "17" in text and ("0.25" in text or family == "llama3")


@pytest.mark.parametrize("family", ["hermes", "llama3", "mistral"])
def test_a_two_turn_tool_episode_is_the_sampled_tokens_plus_the_environments(family):
    tok = family_tokenizer(family)
    # Mistral's template moves the system message into the last user message: no system prompt there
    prompt = (
        {"user": "{{ item.question }}"}
        if family == "mistral"
        else {"system": "Use the tools.", "user": "{{ item.question }}"}
    )
    env = SuiteEnv(load_suite({**suite(FUNCTIONS), "prompt": prompt}))
    _, info = env.reset(options={"index": 0})
    first = reply_in(family, [("add", {"a": 12, "b": 5})])
    answer = f"The answer is \\boxed{{{info['reference']}}}"
    [traj] = run_episodes(Scripted(tok, [first, answer]), tok, [env], [0], Sampling())
    assert traj.reward == 1.0 and traj.turns == 2 and traj.info["tool_stats"]["calls"] == 1
    assert traj.messages[-3]["tool_calls"][0]["function"]["name"] == "add"
    eos = tok.eos_token
    model = [i for i, m in zip(traj.ids, traj.mask, strict=True) if m]
    assert tok.decode(model) == f"{first}{eos}{answer}{eos}"  # the model's tokens, as sampled
    # all tokens: the template's rendering of the conversation with each reply as the model wrote it
    raw = [dict(m) for m in traj.messages]
    raw[traj.prompt_messages] = {"role": "assistant", "content": first}
    if family == "mistral":  # its template refuses a plain reply before a tool message: the text by hand
        prompt = tok.apply_chat_template(
            raw[:1], tools=env.tool_schemas, add_generation_prompt=True, tokenize=False
        )
        results = '[TOOL_RESULTS] {"content": 17, "call_id": "call00000"}[/TOOL_RESULTS]'
        want = f"{prompt}{first}</s>{results}{answer}</s>"
    else:
        want = tok.apply_chat_template(raw, tools=env.tool_schemas, tokenize=False)
    assert tok.decode(traj.ids) == want.rstrip("\n")  # the episode ends with the eos the model sampled


def test_the_suffix_of_a_structured_turn_is_the_tool_messages_and_the_next_prompt():
    tok = family_tokenizer("hermes")
    before = [{"role": "user", "content": "q"}]
    reply = hermes(("add", {"a": 1, "b": 2}))
    ids = [*tok(reply, add_special_tokens=False)["input_ids"], tok.eos_token_id]
    tool_calls = [
        {"id": "call00000", "type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 2}}}
    ]
    after = [
        *before,
        {"role": "assistant", "content": "", "tool_calls": tool_calls},
        {"role": "tool", "tool_call_id": "call00000", "name": "add", "content": "3"},
    ]
    suffix = tok.decode(turn_suffix_ids(tok, before, Completion(reply, ids, "stop"), after))
    assert (
        suffix
        == "\n<|im_start|>user\n<tool_response>\n3\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )
    # a template that rewrites the reply is refused
    tok.chat_template = tok.chat_template.replace(
        "message.content + '<|im_end|>'", "message.content|upper + '<|im_end|>'"
    )
    with pytest.raises(TemplateMismatch):
        turn_suffix_ids(
            tok, before, Completion("abc", ids, "stop"), [*before, {"role": "assistant", "content": "abc"}]
        )


def test_mistral_with_a_system_prompt_rewrites_earlier_turns_and_is_refused():
    tok = family_tokenizer("mistral")
    env = SuiteEnv(load_suite(suite(FUNCTIONS)))  # a system prompt: moved into the last user message
    env.reset(options={"index": 0})
    replies = [reply_in("mistral", [("add", {"a": 1, "b": 2})]), "\\boxed{3}"]
    with pytest.raises(TemplateMismatch, match="prefix"):
        run_episodes(Scripted(tok, replies), tok, [env], [0], Sampling())


def test_llama3_runs_one_call_per_turn_as_its_template_renders():
    tok = family_tokenizer("llama3")
    env = SuiteEnv(load_suite(suite(FUNCTIONS)))
    env.use_chat_template(tok.chat_template)
    env.reset(options={"index": 0})
    _, _, _, _, step = env.step(reply_in("llama3", [("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})]))
    assert [(c["kind"], c["output"][:7]) for c in step["tool_calls"]] == [
        ("call", "3"),
        ("refused", "not run"),
    ]
    assert len(env.messages[-3]["tool_calls"]) == 1 and step["tool_stats"]["errors"] == 1
    text = tok.apply_chat_template(
        env.messages, tools=env.tool_schemas, add_generation_prompt=True, tokenize=False
    )
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


@pytest.mark.parametrize("family", ["hermes", "llama3", "mistral"])
def test_a_malformed_call_then_a_call_then_the_answer(family):
    tok = family_tokenizer(family)
    env = SuiteEnv(load_suite({**suite(FUNCTIONS), "prompt": {"user": "{{ item.question }}"}}))
    _, info = env.reset(options={"index": 0})
    bad = {"hermes": '<tool_call>{"name": "add", </tool_call>', "llama3": '<|python_tag|>{"name": "add", "pa',
           "mistral": '[TOOL_CALLS] [{"name": "add", "argu'}[family]  # fmt: skip
    good = reply_in(family, [("add", {"a": 12, "b": 5})])
    answer = f"\\boxed{{{info['reference']}}}"
    [traj] = run_episodes(Scripted(tok, [bad, good, answer]), tok, [env], [0], Sampling())
    assert traj.reward == 1.0 and traj.turns == 3
    assert traj.info["tool_stats"] == {"calls": 1, "errors": 0, "parse_failures": 1}
    roles = [m["role"] for m in traj.messages]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert "could not be read" in traj.messages[2]["content"] and traj.messages[4]["content"] == "17"
    model = [i for i, m in zip(traj.ids, traj.mask, strict=True) if m]
    assert tok.decode(model) == f"{bad}{tok.eos_token}{good}{tok.eos_token}{answer}{tok.eos_token}"


def test_grpo_logs_tool_metrics_on_a_tools_suite(tmp_path):
    import torch
    import yaml

    from rft.config import load_config
    from rft.rl.grpo import GRPOConfig, train
    from rft.tiny import make_model

    torch.set_num_threads(1)
    tok = family_tokenizer("hermes")  # the Qwen2.5 template: the tools are in every prompt
    make_model(tok).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    path = tmp_path / "adder-tools-v0.yaml"
    path.write_text(yaml.safe_dump({**suite(FUNCTIONS), "split": 0.25}))
    overrides = [f"model={tmp_path / 'm'}", f"suite={path}", f"out={tmp_path / 'run'}", "steps=1",
                 "prompts_per_step=2", "group_size=2", "gen.max_new_tokens=8", "eval.n=2", "grader_workers=0",
                 "max_len=1024"]  # fmt: skip
    train(load_config(GRPOConfig, None, overrides))
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    step = metrics[1]
    for key in ("tools/calls_per_episode", "tools/error_rate", "tools/parse_failures"):
        assert key in step and step[key] >= 0.0, key


def test_calls_to_one_tool_run_in_order_calls_to_different_tools_at_once():
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from rft.envs.tools.calls import gather_calls, plan_calls
    from rft.envs.tools.parse import ParsedReply

    log: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    class Slow:
        def __init__(self, name: str) -> None:
            self.spec = ToolSpec(name, "", {"type": "object", "properties": {"k": {"type": "integer"}}})

        def call(self, arguments):
            with lock:
                log.append((self.spec.name, arguments["k"], "start"))
            time.sleep(0.2)
            with lock:
                log.append((self.spec.name, arguments["k"], "end"))
            return ToolOutput(f"{self.spec.name}{arguments['k']}")

        def close(self):
            pass

    tools = {"a": Slow("a"), "b": Slow("b")}
    parsed = ParsedReply("", (call("a", k=1), call("b", k=1), call("a", k=2)))
    with ThreadPoolExecutor(4) as pool:
        start = time.monotonic()
        outs = gather_calls(plan_calls(parsed, tools, 0), pool).result(timeout=5)
        took = time.monotonic() - start
    assert [o.content for o in outs] == ["a1", "b1", "a2"]
    a_events = [(k, e) for name, k, e in log if name == "a"]
    assert a_events == [
        (1, "start"),
        (1, "end"),
        (2, "start"),
        (2, "end"),
    ]  # one tool: in order, not overlapping
    assert took < 0.55  # b ran beside a's two calls (0.4 s), not after them (0.6 s)


@pytest.mark.parametrize(
    "family, first",
    [
        (
            "hermes",
            'Let me add.\n<tool_call>\n{"name": "add", "arguments": {"a": 12, "b": 5}}\n</tool_call>\n',
        ),
        ("llama3", ' {"name": "add", "parameters": {"a": 12, "b": 5}}\n'),  # its template trims the reply
        ("mistral", '[TOOL_CALLS] [{"name": "add", "arguments": {"a": 12, "b": 5}}]  '),
    ],
)
def test_whitespace_around_a_reply_stays_as_sampled(family, first):
    tok = family_tokenizer(family)
    env = SuiteEnv(load_suite({**suite(FUNCTIONS), "prompt": {"user": "{{ item.question }}"}}))
    _, info = env.reset(options={"index": 0})
    answer = f"\\boxed{{{info['reference']}}}"
    [traj] = run_episodes(Scripted(tok, [first, answer]), tok, [env], [0], Sampling())
    assert traj.reward == 1.0 and traj.info["tool_stats"]["calls"] == 1
    text = tok.decode(traj.ids)
    model = tok.decode([i for i, m in zip(traj.ids, traj.mask, strict=True) if m])
    assert model == f"{first}{tok.eos_token}{answer}{tok.eos_token}"
    start = tok.decode(traj.ids[: traj.prompt_len])
    assert text.startswith(start + first + tok.eos_token)  # nothing inserted or doubled after the reply
    after_eos = text[len(start + first + tok.eos_token) :]
    assert (
        not after_eos.startswith(tok.eos_token)
        and "17" in after_eos
        and after_eos.endswith(answer + tok.eos_token)
    )
