"""Shared by the conformance tests (test_math_conformance.py, test_math_peer_conformance.py): the ported
cases of a checker's test suite, and its known-gaps file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"


def cases(name: str) -> list[dict[str, Any]]:
    """The rows of tests/data/NAME (JSON lines)."""
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


def known_gaps(name: str) -> dict[str, str]:
    """Case id -> the `## heading` of its group in tests/data/NAME (one id per line, `#` comments)."""
    gaps, group = {}, ""
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            group = line[3:].strip()
        elif (text := line.split("#", 1)[0].strip()) and not line.startswith("#"):
            gaps[text] = group
    return gaps


def params(judged: list[dict[str, Any]], gaps: dict[str, str]) -> list[Any]:
    """One pytest param per case, named by its id; a known gap is a strict xfail (a fix fails the test
    until its line leaves the known-gaps file)."""
    import pytest

    out = []
    for case in judged:
        marks = (
            [pytest.mark.xfail(strict=True, reason=f"known gap: {gaps[case['id']]}")]
            if case["id"] in gaps
            else []
        )
        out.append(pytest.param(case, id=case["id"], marks=marks))
    return out
