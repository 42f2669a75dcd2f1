"""The suite registry with a bad file in $RFT_TASKS (issue 20, item 7): the bad file is reported on its own
use and in `rft task list`, every other suite and command keeps working."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rft.envs import SuiteError, broken_suites, get_suite, register_folder, registered_ids, suite_path

RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))
GOOD = (
    "id: {id}\n"
    "source: {{type: generator, name: arithmetic, params: {{digits: 1, operands: 2}}, size: 20}}\n"
    "fields: {{id: id, reference: answer}}\n"
    'prompt: {{user: "{{{{ item.question }}}}"}}\n'
    'grader: {{type: math, input: "{{{{ sample.output_text }}}}", reference: "{{{{ item.reference }}}}"}}\n'
)


def _folder(root: Path, tag: str) -> Path:
    """A $RFT_TASKS folder: one good suite, a file that is not YAML, a bad key, a taken id."""
    root.mkdir()
    (root / "good.yaml").write_text(GOOD.format(id=f"good{tag}-v0"))
    (root / "torn.yaml").write_text("id: torn-v0\nsource: {type: generator\n")
    (root / "badkey.yml").write_text(GOOD.format(id=f"badkey{tag}-v0") + "split: lots\n")
    (root / "zcopy.yaml").write_text(GOOD.format(id=f"good{tag}-v0"))  # the good one's id, another file
    return root


def test_a_bad_file_is_set_aside_and_raised_on_its_own_use(tmp_path):
    tag = tmp_path.name.replace("_", "").lower()[-12:]  # ids unique to this test run (gymnasium's registry)
    folder = _folder(tmp_path / "tasks", tag)
    assert register_folder(folder) == [f"rft/good{tag}-v0"]
    assert f"rft/good{tag}-v0" in registered_ids()
    assert get_suite(f"good{tag}-v0").items("train")
    broken = {b.path.name: b for b in broken_suites() if b.path.parent == folder.resolve()}
    assert sorted(broken) == ["badkey.yml", "torn.yaml", "zcopy.yaml"]
    assert broken["torn.yaml"].env_id == "rft/torn"  # not YAML: named after the file
    assert broken["badkey.yml"].env_id == f"rft/badkey{tag}-v0"
    assert "\n" not in broken["torn.yaml"].error and "line 3" in broken["torn.yaml"].error
    with pytest.raises(SuiteError, match=r"badkey\.yml: split is the held-out fraction.*'lots'"):
        suite_path(f"badkey{tag}-v0")
    with pytest.raises(SuiteError, match=r"torn\.yaml: not valid YAML"):
        suite_path("torn")
    assert (
        "already registered" in broken["zcopy.yaml"].error
        and "bump the version" in broken["zcopy.yaml"].error
    )
    with pytest.raises(SuiteError, match=r"unknown task 'nope-v0'.*broken \(rft task list\)"):
        suite_path("nope-v0")


def _rft(*args: str, tasks: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RFT_TASKS": str(tasks), "COLUMNS": "250"}
    return subprocess.run([RFT, *args], capture_output=True, text=True, timeout=300, env=env)


def test_commands_work_beside_a_bad_suite_file(tmp_path):
    """Was: every command that imports rft.envs died with a 51-line traceback."""
    folder = _folder(tmp_path / "tasks", "")
    listed = _rft("task", "list", tasks=folder)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if line.count("│") > 2}
    assert "rft/good-v0" in rows and "rft/addition-v0" in rows
    assert "broken: torn.yaml" in rows["rft/torn"] and "not valid YAML" in rows["rft/torn"]
    assert "broken: badkey.yml" in rows["rft/badkey-v0"]
    shown = _rft("task", "show", "good-v0", "--n", "1", tasks=folder)
    assert shown.returncode == 0 and "reference:" in shown.stdout, shown.stderr
    bad = _rft("task", "show", "badkey-v0", tasks=folder)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("task 'badkey-v0' is broken:") and "badkey.yml" in bad.stderr
