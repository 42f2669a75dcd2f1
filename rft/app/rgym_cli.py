"""`rft task list --reasoning-gym`: reasoning-gym's datasets, each a suite in a few lines of YAML."""

from __future__ import annotations

from enum import Enum

from rich.markup import escape
from rich.table import Table

from rft.app.cli_base import out, user_errors

__all__ = ["list_reasoning_gym", "REASONING_GYM_HINT"]

REASONING_GYM_HINT = (
    "reasoning-gym's procedural datasets are suites too: `rft task list --reasoning-gym` lists them; "
    "use one with source: {type: reasoning_gym, dataset: NAME, config: {...}, size: N, seed: S} and "
    "grader: {type: reasoning_gym, input: '{{ sample.output_text }}'}"
)
_EXAMPLE = """\
id: rg-chain-sum-v0
source: {type: reasoning_gym, dataset: chain_sum, config: {max_terms: 4}, size: 1000, seed: 0}
fields: {id: id, reference: answer}
prompt:
  system: "Put the final answer in <answer></answer>."
  user: "{{ item.question }}"
grader: {type: reasoning_gym, input: "{{ sample.output_text }}"}
check: {completion: "<answer>{{ item.reference }}</answer>", decoy: "<answer>none</answer>"}"""


def list_reasoning_gym() -> None:
    """Print reasoning-gym's datasets (name, category, config keys with defaults) and a suite to copy."""
    from rft.envs import SuiteError
    from rft.envs.rgym import reasoning_gym_datasets

    with user_errors(SuiteError):
        infos = reasoning_gym_datasets()
    table = Table("dataset", "category", "config (defaults)", title=f"reasoning-gym: {len(infos)} datasets")
    for info in infos:
        config = ", ".join(f"{k}={_short(v)}" for k, v in info.config.items())
        table.add_row(info.name, info.category, escape(config))
    out.print(table)
    out.print("A suite over one of them (a .yaml file; `rft task check FILE` checks it):")
    out.print(escape(_EXAMPLE), highlight=False, soft_wrap=True)


def _short(value: object) -> str:
    """A default in a few characters: long lists and texts by their size."""
    if isinstance(value, Enum):
        value = value.value
    text = repr(value)
    if len(text) <= 24:
        return text
    if isinstance(value, list | tuple | dict | set):
        return f"{type(value).__name__} of {len(value)}"
    return text[:20] + "..."
