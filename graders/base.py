"""Grader base class, the registry of grader types, and spec loading (JSON, YAML, dicts)."""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .grade import Grade
from .template import TemplateError, placeholders, reads_sample, render

__all__ = ["Grader", "GraderSpecError", "register", "load_grader", "grader_types", "as_sample"]

_REGISTRY: dict[str, type[Grader]] = {}


class GraderSpecError(ValueError):
    """A grader spec is invalid. Raised at load time, never while grading."""


def as_sample(sample: Any) -> dict[str, Any]:
    """A bare string is shorthand for ``{"output_text": s}``."""
    if isinstance(sample, str):
        return {"output_text": sample}
    if isinstance(sample, dict):
        return sample
    raise TypeError(f"sample must be a dict or a string, got {type(sample).__name__}")


class Grader(BaseModel):
    """A grader: a validated spec that turns (sample, item) into a `Grade`.

    Subclasses declare their spec fields (OpenAI's names where OpenAI has the type), list the fields
    that hold templates in `template_fields`, and implement `_grade(ctx)`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: str
    name: str = ""
    timeout: float | None = Field(
        default=None, gt=0, description="hard per-sample deadline in seconds (the executor enforces it)"
    )

    template_fields: ClassVar[tuple[str, ...]] = ()

    def model_post_init(self, _context: Any) -> None:
        # ValueErrors raised here reach the user through `load_grader` as a GraderSpecError.
        for field_name in self.template_fields:
            try:
                placeholders(getattr(self, field_name))
            except ValueError as e:
                raise ValueError(f"field {field_name!r}: {e}") from None
        if self.template_fields and not any(reads_sample(getattr(self, f)) for f in self.template_fields):
            raise ValueError(
                f"no template reads the model's output ({', '.join(self.template_fields)}), so every sample "
                "would get the same grade: use {{ sample.output_text }} where the answer goes"
            )

    def grade(self, sample: dict[str, Any] | str, item: dict[str, Any] | None = None) -> Grade:
        """Grade one sample. Never raises: bad rows and grader bugs come back as ``status="error"``
        grades (with the traceback in details), missing model output as ``no_answer``."""
        ctx = {"item": item if item is not None else {}, "sample": as_sample(sample)}
        try:
            return self._grade(ctx)
        except TemplateError as e:
            if e.namespace == "sample":
                return Grade.no_answer(f"model output lacks {e}")
            return Grade.error(f"row lacks a field the grader needs: {e}")
        except Exception as e:  # a grader bug must not crash a training run; it is counted as an error
            return Grade.error(
                f"{self.type} grader {self.name!r} raised {type(e).__name__}: {e}",
                traceback=traceback.format_exc(limit=-4),
            )

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        raise NotImplementedError

    def render(self, field_name: str, ctx: dict[str, Any]) -> Any:
        return render(getattr(self, field_name), ctx)

    def spec(self) -> dict[str, Any]:
        """The spec as plain JSON-able data; `load_grader(g.spec())` rebuilds an equal grader."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


def register(type_name: str):
    """Class decorator: make a grader type loadable by its ``"type"`` name."""

    def deco(cls: type[Grader]) -> type[Grader]:
        _REGISTRY[type_name] = cls
        return cls

    return deco


def grader_types() -> list[str]:
    return sorted(_REGISTRY)


def _read_spec(path: Path) -> Any:
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise GraderSpecError(
                f"{path}: not valid YAML: {getattr(e, 'problem', None) or e}{where}"
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise GraderSpecError(f"{path}: not valid JSON: {e}") from None


def _format_validation(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        msg = err["msg"].removeprefix("Value error, ")
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def load_grader(spec: dict[str, Any] | str | Path | Grader) -> Grader:
    """Build a grader from a spec dict, a JSON/YAML file path, or a JSON string.

    Raises `GraderSpecError` with a message that says what to fix.
    """
    if isinstance(spec, Grader):
        return spec
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as e:
            raise GraderSpecError(f"grader spec is not valid JSON: {e}") from None
    elif isinstance(spec, str | Path):
        path = Path(spec)
        if not path.is_file():
            raise GraderSpecError(f"grader spec file {path} does not exist")
        spec = _read_spec(path)
    if not isinstance(spec, dict):
        raise GraderSpecError(f"a grader spec must be a JSON object, got {type(spec).__name__}")
    type_name = spec.get("type")
    if type_name not in _REGISTRY:
        raise GraderSpecError(
            f'unknown grader type {type_name!r}; set "type" to one of: {", ".join(grader_types())}'
        )
    cls = _REGISTRY[type_name]
    try:
        return cls.model_validate(spec)
    except ValidationError as e:
        name = spec.get("name", "")
        raise GraderSpecError(f"{type_name} grader {name!r}: {_format_validation(e)}") from None
