"""`json_schema` grader: the output must be JSON that validates against a JSON Schema."""

from __future__ import annotations

import json
from typing import Any, Literal

import jsonschema
import regex
from pydantic import Field, PrivateAttr

from .base import Grader, register
from .grade import Grade

__all__ = ["JsonSchema", "extract_json"]

_FENCE = regex.compile(r"```(?:json)?\s*\n(.*?)```", regex.DOTALL | regex.IGNORECASE)


def extract_json(text: str, *, lenient: bool = True) -> Any:
    """The JSON value in `text`: the whole text, else (lenient) the last ```json fence, else the first
    `{...}` or `[...]` that parses. Raises ValueError when there is none."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if not lenient:
            raise ValueError("output is not JSON") from None
    for block in reversed(_FENCE.findall(text)):
        try:
            return json.loads(block)
        except json.JSONDecodeError:
            continue
    decoder = json.JSONDecoder()
    for m in regex.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        return value
    raise ValueError("no JSON value found in the output")


@register("json_schema")
class JsonSchema(Grader):
    """Score 1 when the input is JSON valid under `schema` (any draft `jsonschema` knows), else 0.

    `extract: lenient` also finds JSON inside a ```json fence or surrounding prose; `strict` needs the
    whole output to be JSON. Output with no JSON at all is `no_answer`.
    """

    type: Literal["json_schema"] = "json_schema"
    input: str = "{{ sample.output_text }}"
    schema_: dict[str, Any] = Field(alias="schema")
    extract: Literal["lenient", "strict"] = "lenient"

    template_fields = ("input",)

    _validator: Any = PrivateAttr(default=None)  # built once at load, not per sample

    def model_post_init(self, _context: Any) -> None:
        super().model_post_init(_context)
        cls = jsonschema.validators.validator_for(self.schema_)
        try:
            cls.check_schema(self.schema_)
        except jsonschema.SchemaError as e:
            raise ValueError(f"schema is not a valid JSON Schema: {e.message}") from None
        self._validator = cls(self.schema_)

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        value = self.render("input", ctx)
        if isinstance(value, str):
            try:
                value = extract_json(value, lenient=self.extract == "lenient")
            except ValueError as e:
                return Grade.no_answer(str(e))
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))
        if errors:
            messages = [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5]]
            return Grade(0.0, "ok", False, value, {"errors": messages})
        return Grade(1.0, "ok", True, value)
