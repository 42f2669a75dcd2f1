"""A regular (non-editable) install ships what the editable one reads from the checkout: every package,
the built-in suites (`rft.tasks`) and the demo pipeline, found the same way."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src") / "rft"  # a copy: an in-tree build would reuse (and leave) build/
    skip = shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "runs", "*.egg-info", "__pycache__", ".*_cache"
    )
    shutil.copytree(ROOT, src, ignore=skip)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    res = subprocess.run(
        [*pip, "-w", str(out), str(src)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0 and "No module named" in res.stderr:
        pytest.skip(f"cannot build a wheel here: {res.stderr.strip()[-200:]}")
    assert res.returncode == 0, res.stderr
    (whl,) = out.glob("rft-*.whl")
    return whl


def test_wheel_ships_every_package_and_the_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    suites = sorted(p.name for p in (ROOT / "tasks").glob("*.yaml"))
    assert suites and all(f"rft/tasks/{s}" in names for s in suites)
    assert "rft/app/pipelines/demo.yaml" in names
    view_page = {f"rft/app/view_static/{p.name}" for p in (ROOT / "rft" / "app" / "view_static").iterdir()}
    assert len(view_page) >= 3 and view_page <= names, view_page - names  # rft view's page
    for folder in ("rft", "rft/engines", "rft/eval", "rft/rl", "rft/app", "rft/integrations", "rft/graders",
                   "rft/graders/math", "rft/graders/sandbox", "rft/envs", "rft/tasks", "rft/sft_dpo"):  # fmt: skip
        assert f"{folder}/__init__.py" in names, folder
    sources = {
        str(p.relative_to(ROOT))
        for d in ("rft", "graders", "envs", "sft_dpo")
        for p in (ROOT / d).rglob("*.py")
    }
    assert len([n for n in names if n.endswith(".py")]) >= len(sources)


def test_installed_copy_finds_the_builtin_suites(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)  # fmt: skip
    # -S: no site-packages, so the editable install of this checkout cannot answer instead of the copy
    code = f"import sys; sys.path.insert(0, {str(target)!r}); import rft.tasks; print(*rft.tasks.builtin_suites(), sep='\\n')"
    res = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    found = [Path(line) for line in res.stdout.split()]
    assert [p.name for p in found] == sorted(p.name for p in (ROOT / "tasks").glob("*.yaml"))
    assert all(p.is_relative_to(target) and p.is_file() for p in found)


def test_readme_says_which_torch_build_to_install_on_cpu_and_gpu_machines():
    """`torch==2.13.0` is the CPU build only on some package indexes: the README must not say it is the CPU
    build everywhere, and must give the command for a CPU-only machine and for a GPU machine."""
    text = (ROOT / "README.md").read_text()
    assert "it is the CPU build;" not in text
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text
    gpu = [line for line in text.splitlines() if "GPU" in line and "`pip install torch==2.13.0`" in line]
    assert gpu, "the README has no torch install line for a GPU machine"
