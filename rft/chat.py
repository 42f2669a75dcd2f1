"""Chat templates: render conversations the one way rft does, choose a template, pass template kwargs.

Every prompt rft builds goes through `render_chat` (rollouts, turn suffixes, DPO data), so the options a recipe
or suite sets reach all of them: ``chat_template_kwargs`` (e.g. ``{enable_thinking: false}`` for Qwen3) and a
replacement template (`ChatConfig.template`: a name in `TEMPLATES` or a ``.jinja`` file).

Thinking models: Qwen3's template drops the ``<think>`` reasoning of earlier assistant turns, so the text of a
multi-turn episode built turn by turn (what the model sampled) is not the text of the whole conversation
rendered again, and `rft.rollout.turn_suffix_ids` refuses it. ``chat: {template: qwen3-preserving}`` swaps in a
prefix-preserving copy (``rft/templates/``): prompts render as the original does, and every assistant turn is the
generation prompt followed by the reply exactly as sampled, earlier reasoning kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rft.envs.suite import template_kwargs

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "TEMPLATES",
    "ChatConfig",
    "parse_chat",
    "render_chat",
    "load_template",
    "use_chat_template",
    "recognise",
]

# name -> its file under rft/templates/
TEMPLATES: dict[str, str] = {"qwen3-preserving": "qwen3_prefix_preserving.jinja"}
# originals (rft/templates/originals/) that rewrite earlier turns -> the prefix-preserving replacement's name
_REWRITING: dict[str, str] = {"qwen3.jinja": "qwen3-preserving"}


@dataclass
class ChatConfig:
    """How prompts are rendered: the chat template and the kwargs every render passes to it."""

    template: str | None = None  # None: the tokenizer's own; a name in rft.chat.TEMPLATES or a .jinja path
    kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {enable_thinking: false}; a suite's win

    def __post_init__(self) -> None:
        self.kwargs = template_kwargs(self.kwargs, "chat.kwargs")
        if self.template is not None:
            load_template(self.template)  # validates: a known name or a readable .jinja file

    def merged(self, suite_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
        """The kwargs for one suite's prompts: these, overridden key by key by the suite's own."""
        return {**self.kwargs, **(suite_kwargs or {})}


CHAT_HELP = (
    "chat template and its kwargs, YAML: {template: qwen3-preserving, kwargs: {enable_thinking: false}}"
)


def parse_chat(text: str | None) -> ChatConfig:
    """A `ChatConfig` from a command line's YAML mapping (`CHAT_HELP`); empty or None: the defaults."""
    if not text:
        return ChatConfig()
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"--chat is not YAML ({' '.join(str(e).split())}); expected {CHAT_HELP}") from None
    if not isinstance(value, dict) or set(value) - {"template", "kwargs"}:
        raise ValueError(f"--chat takes the keys template and kwargs, got {text!r}; expected {CHAT_HELP}")
    return ChatConfig(template=value.get("template"), kwargs=value.get("kwargs") or {})


def load_template(name_or_path: str) -> str:
    """The text of a template rft ships (a name in `TEMPLATES`) or of a ``.jinja`` file."""
    if name_or_path in TEMPLATES:
        return (resources.files("rft") / "templates" / TEMPLATES[name_or_path]).read_text(encoding="utf-8")
    path = Path(name_or_path).expanduser()
    if path.suffix != ".jinja" or not path.is_file():
        raise ValueError(
            f"chat.template {name_or_path!r} is neither a template rft ships ({', '.join(TEMPLATES)}) nor a "
            ".jinja file; name one of those or the path of a Jinja chat template"
        )
    return path.read_text(encoding="utf-8")


def use_chat_template(tokenizer: PreTrainedTokenizerBase, config: ChatConfig) -> PreTrainedTokenizerBase:
    """Give `tokenizer` the config's template (it is then saved with checkpoints); returns the tokenizer."""
    if config.template is not None:
        tokenizer.chat_template = load_template(config.template)
    return tokenizer


def recognise(template: str | None) -> str | None:
    """The name of the prefix-preserving template rft ships for `template`, when it is a known original that
    rewrites earlier turns (compared with blank space ignored); else None."""
    if not isinstance(template, str):
        return None
    squeezed = "".join(template.split())
    for original, name in _REWRITING.items():
        text = (resources.files("rft") / "templates" / "originals" / original).read_text(encoding="utf-8")
        if "".join(text.split()) == squeezed:
            return name
    return None


def render_chat(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, Any]],
    *,
    add_generation_prompt: bool = False,
    **template_kwargs: Any,
) -> str:
    """`messages` rendered as text by the tokenizer's chat template, with `template_kwargs` passed to it."""
    text = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=False, **template_kwargs
    )
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template(tokenize=False) returned {type(text).__name__}, not text")
    return text
