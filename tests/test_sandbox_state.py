"""Private per-user sandbox state (graders/sandbox/state.py): a folder someone else planted, a symlink,
or loose modes get an error grade naming the problem, never a verdict."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from _sandboxes import as_user, other_user

from rft.graders import load_grader
from rft.graders.sandbox import SandboxUnavailable, get_sandbox
from rft.graders.sandbox.auto import auto_candidates, check_sandbox
from rft.graders.sandbox.local import FORKSERVER_PATH, HARNESS_RUNTIME_PATH
from rft.graders.sandbox.state import check_own_tree, default_state_dir, private_dir, state_dir

FOREIGN_UID = 54321  # no such user here: a folder chowned to it is "someone else's"
ITEM = {"prompt": "def add(a, b):\n", "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n"}


def grade(sandbox: str, lock_dir: str):
    grader = load_grader(
        {
            "type": "code",
            "prefix": "{{ item.prompt }}",
            "tests": "{{ item.test }}",
            "entry_point": "add",
            "sandbox": sandbox,
            "sandbox_options": {"lock_dir": lock_dir},
            "run_timeout": 5,
        }
    )
    return grader.grade({"output_text": "    return a + b\n"}, ITEM)


def plant_bwrap_runtime(lock_dir: Path, python: str = "/usr/bin/python3") -> Path:
    """What another user could leave at the runtime folder's predictable name: their own harness."""
    sources = FORKSERVER_PATH.read_bytes() + HARNESS_RUNTIME_PATH.read_bytes()
    key = hashlib.sha256(sources + python.encode()).hexdigest()[:16]
    runtime = lock_dir / f"bwrap-{key}"
    runtime.mkdir(mode=0o755)
    shutil.copy(FORKSERVER_PATH, runtime / "forkserver.py")
    shutil.copy(HARNESS_RUNTIME_PATH, runtime / "rft_harness.py")
    return runtime


def chown_tree(path: Path, uid: int) -> None:
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, uid, uid)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's folder needs root (chown)")


@pytest.fixture
def open_tmp():
    """A folder every uid can reach (pytest's tmp_path is not: bwrap's slot uid must get through)."""
    path = Path(tempfile.mkdtemp(prefix="rft-state-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@needs_root
@pytest.mark.parametrize("sandbox", ["bwrap", "auto"])
def test_foreign_owned_state_folder_is_an_error_not_a_verdict(open_tmp, sandbox):
    """The old shared /tmp/rft-sandbox, made first by another user with their own harness in bwrap's
    runtime folder: the old code graded through it (status ok: a verdict); now an error names it."""
    shared = open_tmp / "shared"
    shared.mkdir(mode=0o755)
    plant_bwrap_runtime(shared)
    chown_tree(shared, FOREIGN_UID)
    g = grade(sandbox, str(shared))
    assert g.status == "error", g
    assert f"owned by uid {FOREIGN_UID}" in g.details["error"] and "lock_dir" in g.details["error"]


@needs_root
def test_foreign_runtime_folder_in_own_state_folder_is_not_reused(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    runtime = plant_bwrap_runtime(state)
    chown_tree(runtime, FOREIGN_UID)
    g = grade("bwrap", str(state))
    assert (
        g.status == "error"
        and "cannot be reused" in g.details["error"]
        and f"owner uid {FOREIGN_UID}" in g.details["error"]
    ), g


@pytest.mark.parametrize("sandbox", ["bwrap", "auto"])
def test_symlinked_state_folder_is_an_error_not_a_verdict(tmp_path, sandbox):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)  # even a folder that would pass: the path itself must not be a link
    link = tmp_path / "state"
    link.symlink_to(target)
    g = grade(sandbox, str(link))
    assert g.status == "error" and "is a symlink" in g.details["error"], g


def test_symlink_inside_runtime_folder_is_refused(tmp_path):
    runtime = tmp_path / "bwrap-x"
    runtime.mkdir(mode=0o755)
    (runtime / "forkserver.py").symlink_to("/etc/hostname")
    with pytest.raises(SandboxUnavailable, match="is a symlink"):
        check_own_tree(str(runtime))


def test_loose_mode_is_refused_with_the_fix(tmp_path):
    loose = tmp_path / "state"
    loose.mkdir()
    os.chmod(loose, 0o755)
    with pytest.raises(SandboxUnavailable, match="must be private .chmod 7"):
        private_dir(str(loose))


def test_state_folder_is_made_private_and_reused(tmp_path):
    path = tmp_path / "new"
    assert state_dir(str(path)) == str(path)
    st = os.lstat(path)
    assert st.st_uid == os.geteuid() and (st.st_mode & 0o077) in (0, 0o011)
    assert state_dir(str(path)) == str(path)  # checked again, still fine
    uid = os.geteuid()
    assert default_state_dir() in (
        "/run/rft-sandbox",
        f"/tmp/rft-sandbox-{uid}",
    ) or default_state_dir().endswith("/rft-sandbox")


def test_auto_takes_the_strongest_backend_here():
    report = check_sandbox("auto")
    assert report.ok, report.message
    assert report.backend == auto_candidates()[0] == ("local" if os.geteuid() == 0 else "userns")
    g = load_grader(
        {"type": "code", "prefix": "{{ item.prompt }}", "tests": "{{ item.test }}", "entry_point": "add"}
    ).grade({"output_text": "    return a + b\n"}, ITEM)
    assert g.status == "ok" and g.score == 1.0 and g.details["sandbox"] == report.backend


def test_auto_fails_closed_saying_what_to_enable(monkeypatch):
    from rft.graders.sandbox import auto

    cannot = ("userns",) if os.geteuid() == 0 else ("local",)  # the fork server of the other kind of user
    monkeypatch.setattr(auto, "auto_candidates", lambda: cannot)
    with pytest.raises(SandboxUnavailable, match="no sandbox backend can run code here") as e:
        get_sandbox("auto")
    assert f"{cannot[0]}: " in str(e.value)
    assert "bubblewrap" in str(e.value) and "user namespaces" in str(e.value)
    with pytest.raises(ValueError, match="no candidate backend"):
        get_sandbox("auto", no_such_option=1)


@pytest.fixture(scope="module")
def user():
    yield from other_user()


PLANTED_DEFAULT = """
import os, sys
from rft.graders import load_grader
from rft.graders.sandbox.state import default_state_dir
item = {item!r}
g = load_grader({{"type": "code", "prefix": "{{{{ item.prompt }}}}", "tests": "{{{{ item.test }}}}",
                  "entry_point": "add"}}).grade({{"output_text": "    return a + b\\n"}}, item)
print(default_state_dir(), g.status, g.score, g.details.get("sandbox"), g.details.get("error"))
"""


@needs_root
def test_as_another_user_default_state_and_planted_paths(user, tmp_path):
    """As a user other than root, with no option set: auto grades in the user's own folder; a folder or a
    symlink planted at that path by someone else makes every grade an error naming it."""
    script = PLANTED_DEFAULT.format(item=ITEM)
    uid = int(as_user(user, ["id", "-u"]).stdout)
    default = f"/tmp/rft-sandbox-{uid}"
    out = as_user(user, [sys.executable, "-c", script], timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[:4] == [default, "ok", "1.0", "userns"], out.stdout
    shutil.rmtree(default)
    xdg = f"/home/{user}/xdg"  # a private runtime folder of the user's: the state goes there instead
    assert as_user(user, ["mkdir", "-m", "700", xdg]).returncode == 0
    out = as_user(user, [sys.executable, "-c", script], timeout=120, XDG_RUNTIME_DIR=xdg)
    assert out.stdout.split()[:4] == [f"{xdg}/rft-sandbox", "ok", "1.0", "userns"], out.stdout + out.stderr
    for plant in ("folder", "symlink"):
        if plant == "folder":
            os.mkdir(default, 0o700)
            os.chown(default, FOREIGN_UID, FOREIGN_UID)
            why = f"owned by uid {FOREIGN_UID}"
        else:
            os.symlink(str(tmp_path), default)
            why = "is a symlink"
        try:
            out = as_user(user, [sys.executable, "-c", script], timeout=120)
            assert out.returncode == 0, out.stderr[-2000:]
            assert out.stdout.split()[1] == "error" and why in out.stdout, out.stdout
        finally:
            if os.path.islink(default):
                os.unlink(default)
            else:
                shutil.rmtree(default)
