"""The import arrows, as rules without exceptions: the folder tree is the layer diagram.

graders, tasks  <-  envs  <-  rft base (config, models, losses, runs)  <-  engines  <-  rollout, batch, tiny
<-  eval  <-  rl | sft_dpo | integrations  <-  app. An import may only point to a lower layer or stay in its
own package; nothing imports rft.app; no import cycle among the project's modules (imports inside functions
count); no private name imported from another module; no module over 600 lines but the fork server, which
is copied whole into sandboxes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "graders": "rft.graders",
    "tasks": "rft.tasks",
    "envs": "rft.envs",
    "sft_dpo": "rft.sft_dpo",
    "rft": "rft",
}
# Layer of each package or module, by longest prefix; a lower number is further down.
LAYERS = {
    "rft.graders": 0, "rft.tasks": 0,
    "rft.envs": 1,
    "rft.config": 2, "rft.models": 2, "rft.chat": 2, "rft.losses": 2, "rft.logprobs": 2,
    "rft.runs": 3, "rft.engines": 3,
    "rft.rollout": 4,
    "rft.batch": 5, "rft.tiny": 5,
    "rft.eval": 6,
    "rft.rl": 7, "rft.sft_dpo": 7, "rft.integrations": 7,
    "rft.app": 8,
    "rft.__main__": 9,  # `python -m rft`: the command line's entry point, as the `rft` script is
}  # fmt: skip
LAZY_HEAVY = {"graders/ray_pool.py": {"ray"}}  # optional dependencies imported inside functions only
HEAVY = {"torch", "transformers", "trl", "peft", "vllm", "accelerate", "datasets", "ray", "docker"}
LONG_FILES = {"graders/sandbox/forkserver.py"}  # self-contained: copied into sandboxes as one file


def _module(path: Path) -> str:
    """The import name of a project file: graders/math/x.py is rft.graders.math.x."""
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [FOLDERS[folder], *rest]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module(p): p for f in FOLDERS for p in sorted((ROOT / f).rglob("*.py"))}


def _imports(path: Path, module: str, text: str | None = None) -> list[tuple[str, list[str]]]:
    """(module imported from, names imported) for each import in a file, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text() if text is None else text, filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.append((mod, [a.name for a in node.names]))
    return out


def _edges(path: Path, module: str, modules: set[str], text: str | None = None) -> set[str]:
    """The project modules a file imports: `from pkg import sub` names the submodule pkg.sub."""
    found = set()
    for mod, names in _imports(path, module, text):
        subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in modules]
        found |= set(subs) or {mod}
        if len(subs) < len(names):
            found.add(mod)
    return {m for m in found if m in modules and m != module}


def _layer(module: str) -> tuple[str, int]:
    key = max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len)
    return key, LAYERS[key]


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    return {m: _edges(p, m, set(sources)) for m, p in sources.items() if m != "rft"}


def _arrow_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        home, level = _layer(module)
        for t in sorted(targets):
            there, their_level = _layer(t)
            if there != home and their_level >= level:
                bad.append(f"{module} (layer {level}) imports {t} (layer {their_level})")
    return bad


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    assert [m for m in _graph() if not any(m == k or m.startswith(k + ".") for k in LAYERS)] == []


def test_imports_point_down_only():
    assert _arrow_violations(_graph()) == []


def test_nothing_imports_the_app_layer():
    graph = _graph()
    assert [f"{m} imports {t}" for m, ts in graph.items() if not m.startswith(("rft.app", "rft.__main__"))
            for t in ts if t.startswith("rft.app")] == []  # fmt: skip


def test_sft_dpo_never_imports_rl():
    assert [f"{m} -> {t}" for m, ts in _graph().items() if m.startswith("rft.sft_dpo") for t in ts
            if t.startswith(("rft.rl", "rft.app"))] == []  # fmt: skip


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_no_private_name_imported_from_another_module():
    sources = _sources()
    bad = []
    for module, path in sources.items():
        for mod, names in _imports(path, module):
            if mod.split(".")[0] != "rft" or mod == module:
                continue
            bad += [
                f"{module} imports {mod}.{n}" for n in names if n.startswith("_") and not n.startswith("__")
            ]
    assert bad == []


def test_no_module_over_600_lines():
    long = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in _sources().values()
        if (n := len(p.read_text().splitlines())) > 600 and str(p.relative_to(ROOT)) not in LONG_FILES
    ]
    assert long == []


def test_graders_import_no_heavy_dependency():
    bad = []
    for module, path in _sources().items():
        if not module.startswith("rft.graders"):
            continue
        lazy = LAZY_HEAVY.get(str(path.relative_to(ROOT)), set())
        bad += [f"{module} imports {m}" for m, _ in _imports(path, module) if m.split(".")[0] in HEAVY - lazy]
    assert bad == []


def test_importing_graders_loads_no_torch():
    heavy = sorted(HEAVY)
    code = f"import sys, rft.graders, rft.graders.executor; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


def test_checker_sees_a_wrong_arrow_a_cycle_and_a_private_import():
    bad = ROOT / "graders" / "math" / "x.py"
    text = "from rft.envs import make\nimport torch\nfrom ...rft import cli\nfrom rft.runs import _latest\n"
    assert [m for m, _ in _imports(bad, _module(bad), text)] == ["rft.envs", "torch", "rft.rft", "rft.runs"]
    assert _module(bad) == "rft.graders.math.x"
    graph = {"rft.graders.a": {"rft.envs.b"}, "rft.envs.b": {"rft.graders.a"}, "rft.app.c": set()}
    assert _arrow_violations(graph) == ["rft.graders.a (layer 0) imports rft.envs.b (layer 1)"]
    assert _cycles(graph) == [["rft.envs.b", "rft.graders.a"]]
    modules = {"rft.engines", "rft.engines.hf"}
    text = "def f():\n    from rft.engines import hf, Sampling\n"
    assert _edges(ROOT / "rft" / "x.py", "rft.x", modules, text) == modules
