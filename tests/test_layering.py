"""The import arrows: graders <- envs <- rft, sft_dpo; only the command layer (the CLI and the pipeline
runner behind `rft run`, whose stages are both rft's RL loops and rft.sft_dpo's trainers) imports everything."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"graders": "rft.graders", "envs": "rft.envs", "sft_dpo": "rft.sft_dpo", "rft": "rft"}
WIRING = {"cli.py", "pipeline.py"}  # rft/ modules that may import rft.sft_dpo
LAZY_HEAVY = {"graders/ray_pool.py": {"ray"}}  # optional dependencies imported inside functions only
HEAVY = {"torch", "transformers", "trl", "peft", "vllm", "accelerate", "datasets", "ray", "docker"}


def _imports(path: Path, package: str) -> list[str]:
    """Absolute module names imported by a file (relative imports resolved against `package`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.append(mod)
            names += [f"{mod}.{a.name}" for a in node.names]
    return names


def _package(path: Path, folder: str) -> str:
    """The package a file belongs to: graders/math/x.py is in rft.graders.math."""
    sub = path.parent.relative_to(ROOT / folder).parts
    return ".".join([PACKAGES[folder], *sub])


def _violations(folder: str, allowed_rft: tuple[str, ...], forbid_heavy: bool) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in _imports(path, _package(path, folder)):
            top = name.split(".")[0]
            if top == "rft" and name != "rft" and not name.startswith(allowed_rft):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
            if forbid_heavy and top in HEAVY and top not in LAZY_HEAVY.get(str(path.relative_to(ROOT)), ()):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


def test_graders_import_nothing_else_of_rft_and_no_torch():
    assert _violations("graders", ("rft.graders",), forbid_heavy=True) == []


def test_envs_import_only_graders():
    assert _violations("envs", ("rft.graders", "rft.envs"), forbid_heavy=False) == []


@pytest.mark.parametrize("folder", ["rft", "sft_dpo", "envs", "graders"])
def test_only_the_cli_imports_the_cli(folder):
    offenders = [
        f"{p.relative_to(ROOT)}"
        for p in (ROOT / folder).rglob("*.py")
        if p.name != "cli.py" and any(n.startswith("rft.cli") for n in _imports(p, _package(p, folder)))
    ]
    assert offenders == []


def test_rft_core_does_not_import_sft_dpo():
    bad = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "rft").rglob("*.py")
        if p.name not in WIRING and any(n.startswith("rft.sft_dpo") for n in _imports(p, _package(p, "rft")))
    ]
    assert bad == []


def test_importing_graders_loads_no_torch():
    heavy = sorted(HEAVY)
    code = f"import sys, rft.graders, rft.graders.executor; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


def test_checker_sees_a_wrong_arrow(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("from rft.envs import make\nimport torch\nfrom ..rft import cli\n")
    names = _imports(bad, "rft.graders")
    assert "rft.envs" in names and "torch" in names and "rft.rft.cli" in names
    nested = ROOT / "graders" / "math" / "x.py"
    assert _package(nested, "graders") == "rft.graders.math"
