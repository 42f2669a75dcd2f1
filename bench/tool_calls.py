"""Tool calls of `tools` episodes: parsing per family, and a turn's python_exec calls through an EnvPool.

Rows: parse_tool_calls on a reply with 4 calls (hermes, llama3, mistral), per reply; then one pool step of
8 envs whose replies each hold 4 python_exec calls (32 sandboxed programs) on a warm pool, with 1 tool
thread (the anchor: calls one after another) and with 4 threads (an env's calls to its one python_exec tool
run in order; different envs' at once). Ratios are to the anchor of the same run. Timings on a shared
machine are noisy: take the best of --repeat.
Run: python bench/tool_calls.py [--repeat 3] [--envs 8]
"""

from __future__ import annotations

import argparse
import json
import time

from rft.envs import EnvPool, SuiteEnv, load_suite
from rft.envs.tools import parse_tool_calls

SUITE = {
    "id": "bench-tools-v0",
    "source": {"type": "generator", "name": "arithmetic", "params": {"digits": 2, "operands": 2}, "size": 16},
    "fields": {"id": "id", "reference": "answer"},
    "prompt": {"user": "{{ item.question }}"},
    "grader": {"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.reference }}"},
    "split": 0.0,
    "episode": {"type": "tools", "max_turns": 3, "tools": [{"python_exec": {}}], "tool_format": "hermes"},
}
CALLS = [{"name": "python_exec", "arguments": {"code": f"print(sum(range({k} * 1000)))"}} for k in range(4)]
REPLIES = {
    "hermes": "".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>\n" for c in CALLS),
    "llama3": "; ".join(json.dumps({"name": c["name"], "parameters": c["arguments"]}) for c in CALLS),
    "mistral": "[TOOL_CALLS] " + json.dumps(CALLS),
}


def best(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def pool_seconds(n_envs: int, threads: int, repeat: int) -> float:
    """Best time of one step of a warm pool (sandboxes are per tool thread: the first step starts them)."""
    suite = load_suite(SUITE)
    envs = [SuiteEnv(suite) for _ in range(n_envs)]
    with EnvPool(envs, executor="inline", tool_threads=threads) as pool:

        def step() -> None:
            pool.reset(seed=0)
            out = pool.step([REPLIES["hermes"]] * n_envs)
            assert all(info and info["tool_stats"]["calls"] == 4 for info in out.infos)

        step()
        return best(repeat, step)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--envs", type=int, default=8)
    args = ap.parse_args()
    print(f"{'row':<34}{'seconds':>12}{'ratio':>10}")
    n = 2000
    anchor = best(args.repeat, lambda: [parse_tool_calls(REPLIES["hermes"], "hermes") for _ in range(n)]) / n
    for family, reply in REPLIES.items():
        t = best(args.repeat, lambda r=reply, f=family: [parse_tool_calls(r, f) for _ in range(n)]) / n
        print(f"{'parse 4 calls, ' + family:<34}{t:>12.2e}{t / anchor:>10.2f}")
    one = pool_seconds(args.envs, 1, args.repeat)
    print(f"{f'pool step, {args.envs}x4 calls, 1 thread':<34}{one:>12.3f}{1.0:>10.2f}")
    four = pool_seconds(args.envs, 4, args.repeat)
    print(f"{f'pool step, {args.envs}x4 calls, 4 threads':<34}{four:>12.3f}{four / one:>10.2f}")


if __name__ == "__main__":
    main()
