"""`check_task`: sanity checks of one registered task (used by `rft task check` and the tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from rft.graders import render
from rft.graders.sandbox.auto import check_sandbox, code_sandboxes

from .contamination import decontamination
from .env import SuiteEnv
from .tools.builtin import PythonExecProvider
from .tools.python_session import PythonSessionProvider

__all__ = ["Check", "Report", "check_task", "DEFAULT_COMPLETION", "DEFAULT_DECOY"]

DEFAULT_COMPLETION = "The answer is $\\boxed{{{ item.reference }}}$."
DEFAULT_DECOY = "The answer is $\\boxed{-31415926}$."


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    env_id: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, bool(ok), detail))


def check_task(env_id: str, *, n: int | None = 3, seed: int = 0) -> Report:
    """On the first `n` train items (a benchmark's held-out items; every item when `n` is None): the
    reference answer scores 1, an empty and a decoy answer 0; in feedback episodes a wrong answer gets
    feedback (without the reference) and a second try, in tool episodes a tool call runs and its output
    comes back; a seeded reset is deterministic; infos are
    JSON-serialisable; the train and held-out splits are disjoint and share no prompt (exact, after
    normalising; n-gram overlaps are counted in the detail)."""
    report = Report(env_id)
    env = gym.make(env_id)
    try:
        base = env.unwrapped
        assert isinstance(base, SuiteEnv)
        suite = base.suite
        episode = suite.episode
        sandboxes = code_sandboxes(suite.grader)
        if episode.type == "tool" or any(isinstance(p, PythonExecProvider) for p in episode.providers):
            sandboxes.append((episode.sandbox, dict(episode.sandbox_options)))
        for name, options in sandboxes:  # first: without a sandbox, every code check below fails
            sb = check_sandbox(name, **options)
            report.add(f"sandbox {name!r} runs a test program here", sb.ok, sb.message)
        completion = suite.check.get("completion", DEFAULT_COMPLETION)
        decoy = suite.check.get("decoy", DEFAULT_DECOY)
        # a benchmark (split: 1) has only held-out items: check those
        split = "heldout" if suite.heldout_only else "train"
        count = len(base.items(split))
        for index in range(count if n is None else min(n, count)):
            _, info = env.reset(options={"split": split, "index": index})
            item = base.items(split)[index]
            ref_text = str(render(completion, {"item": item, "sample": {}}))
            for name, text, want in (("reference", ref_text, 1.0), ("empty", "", 0.0), ("decoy", decoy, 0.0)):
                env.reset(options={"split": split, "index": index})
                _, reward, term, trunc, step_info = env.step(text)
                if want == 1.0 or episode.type != "feedback":
                    ok = reward == want and term and not trunc and not step_info["grade_failed"]
                    report.add(
                        f"{name} answer scores {want:g} (item {info['id']})",
                        ok,
                        _why(step_info, float(reward)),
                    )
                else:
                    _check_feedback(
                        report, env, item, name, ref_text, float(reward), term or trunc, step_info
                    )
                report.add(f"step info is JSON (item {info['id']}, {name})", _jsonable(step_info))
            report.add(f"reset info is JSON (item {info['id']})", _jsonable(info))
        if episode.type == "tool":
            env.reset(options={"split": split, "index": 0})
            obs, reward, term, trunc, step_info = env.step(
                f"<{episode.tool_tag}>print(6 * 7)</{episode.tool_tag}>"
            )
            last = json.loads(obs)[-1]
            ok = last["role"] == "tool" and last["content"].strip() == "42" and not (term or trunc)
            report.add(
                "a tool call runs and its output comes back", ok, f"{last['role']}: {last['content'][:80]!r}"
            )
        if episode.type == "tools":
            _check_tools(report, base, split)
        a = env.reset(seed=seed, options={"split": split})
        b = env.reset(seed=seed, options={"split": split})
        report.add("reset(seed) is deterministic", a == b, f"{a[1]['id']} vs {b[1]['id']}")
        if suite.heldout_only:
            n_held = len(base.items("heldout"))
            report.add("benchmark: every item is held-out", n_held > 0, f"{n_held} held-out, 0 train")
            return report
        train = {it["id"] for it in base.items("train")}
        heldout = {it["id"] for it in base.items("heldout")}
        report.add(
            "splits are disjoint", not (train & heldout), f"{len(train)} train, {len(heldout)} held-out"
        )
        report.add("train split is not empty", bool(train))
        overlaps = decontamination(suite)
        exact = sum(o.kind == "exact" for o in overlaps)
        report.add(
            "no held-out prompt equals a train prompt",
            exact == 0,
            f"{exact} exact, {len(overlaps) - exact} sharing a 13-gram (see rft.envs.decontamination)",
        )
    finally:
        env.close()
    return report


_MALFORMED = {
    "auto": '<tool_call>{"name": </tool_call>',
    "hermes": '<tool_call>{"name": </tool_call>',
    "llama3": '<|python_tag|>{"name": ',
    "mistral": '[TOOL_CALLS] [{"name": ',
}


def _check_tools(report: Report, env: SuiteEnv, split: str) -> None:
    """A tools episode lists its tools, and a call that does not parse gets a tool message, not a grade."""
    names = [t["function"]["name"] for t in env.tool_schemas]
    report.add("the episode's tools have schemas", bool(names), ", ".join(names))
    env.reset(options={"split": split, "index": 0})
    obs, _, term, trunc, info = env.step(_MALFORMED[env.tool_format])
    last = json.loads(obs)[-1]
    ok = last["role"] == "tool" and info["tool_stats"]["parse_failures"] == 1 and not (term or trunc)
    report.add(
        "a malformed tool call is answered with a tool message",
        ok,
        f"{last['role']}: {last['content'][:80]!r}",
    )
    for p in env.episode.providers:
        if isinstance(p, PythonExecProvider):
            name = p.specs()[0].name
            env.reset(options={"split": split, "index": 0})
            obs, _, term, trunc, info = env.step(_call_text(env.tool_format, name, {"code": "print(6 * 7)"}))
            last = json.loads(obs)[-1]
            ok = last["role"] == "tool" and last["content"].strip() == "42" and not (term or trunc)
            report.add(
                f"a {name} call runs and its output comes back",
                ok,
                f"{last['role']}: {last['content'][:80]!r}",
            )
        elif isinstance(p, PythonSessionProvider) and env.episode.max_turns >= 3:  # two calls, then an answer
            _check_session(report, env, split, p.specs()[0].name)


def _check_session(report: Report, env: Any, split: str, name: str) -> None:
    """A stateful Python tool keeps a variable across an episode's calls and none across episodes."""
    outputs = []
    for codes in (["x = 6 * 7", "print(x)"], ["print('x' in globals())"]):
        env.reset(options={"split": split, "index": 0})
        for code in codes:
            obs, _, term, trunc, _ = env.step(_call_text(env.tool_format, name, {"code": code}))
        last = json.loads(obs)[-1]
        outputs.append(last["content"].strip() if last["role"] == "tool" and not (term or trunc) else last)
    report.add(
        f"a {name} call sees the episode's earlier calls' variables", outputs[0] == "42", repr(outputs[0])
    )
    report.add(f"a new episode's {name} session starts empty", outputs[1] == "False", repr(outputs[1]))


def _call_text(tool_format: str, name: str, arguments: dict[str, Any]) -> str:
    """A well-formed call in a family's syntax."""
    if tool_format == "llama3":
        return json.dumps({"name": name, "parameters": arguments})
    if tool_format == "mistral":
        return "[TOOL_CALLS] " + json.dumps([{"name": name, "arguments": arguments}])
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def _check_feedback(
    report: Report,
    env: Any,
    item: dict[str, Any],
    name: str,
    ref_text: str,
    reward: float,
    done: bool,
    info: dict,
) -> None:
    """A wrong first answer in a feedback episode: reward 0, a feedback message without the reference,
    and a second answer that is graded (the reference, minus the turn penalty)."""
    base = env.unwrapped
    last = base.messages[-1]
    ok = reward == 0.0 and not done and not info["grade_failed"] and last["role"] == "user"
    report.add(f"{name} answer gets feedback, reward 0 (item {item['id']})", ok, _why(info, reward))
    reference = str(item["reference"])
    leaked = len(reference) >= 8 and reference in last["content"]
    report.add(f"feedback does not show the reference (item {item['id']})", not leaked)
    _, reward2, term, trunc, info2 = env.step(ref_text)
    want = 1.0 - base.episode.turn_penalty
    ok = abs(reward2 - want) < 1e-9 and term and not trunc
    report.add(f"second answer after feedback scores {want:g} (item {item['id']})", ok, _why(info2, reward2))


def _jsonable(x: Any) -> bool:
    try:
        json.dumps(x)
    except (TypeError, ValueError):
        return False
    return True


def _why(info: dict[str, Any], reward: float) -> str:
    g = info["grade"]
    why = f"reward {reward:g}, status {g['status']}, extracted {str(g['extracted'])[:40]!r}"
    error = (g.get("details") or {}).get("error")
    return f"{why}: {error}" if error else why
