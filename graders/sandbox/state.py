"""Private per-user state for the sandbox backends: uid lock files, fork-server mount points, bwrap's
runtime folder.

`/tmp` is shared by every user, so a fixed name there (``/tmp/rft-sandbox``) lets whoever comes first
own it: another user could plant the runtime folder bwrap reuses (and decide your verdicts) or hold
the uid locks. Instead each user gets a folder of their own, made with mode 0700 and checked on every
use: a real directory (never followed through a symlink), owned by this process's effective uid, no
group or other permission bits, under parents that only root or this user can change. Anything else
fails closed with `SandboxUnavailable`, saying what is wrong and what to do.

Where (`state_dir()`): as root ``/run/rft-sandbox`` (where /run is root's alone), else
``/tmp/rft-sandbox-0``; as another user ``$XDG_RUNTIME_DIR/rft-sandbox`` when that variable names a
private directory of this user, else ``/tmp/rft-sandbox-<uid>``. Every process of one user finds the
same folder (root's uid slots are locked there, so they must). ``sandbox_options.lock_dir`` picks
another folder, which gets the same checks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from .base import SandboxUnavailable

__all__ = [
    "state_dir",
    "default_state_dir",
    "private_dir",
    "check_private_fd",
    "check_private_path",
    "check_own_tree",
    "private_mode",
]

_FIX = "remove it (if it is not yours, ask who made it) or set sandbox_options.lock_dir to a private folder"


def default_state_dir() -> str:
    """Where this user's sandbox state lives by default (see the module docstring); not created here."""
    uid = os.geteuid()
    if uid == 0:
        with contextlib.suppress(OSError):
            st = os.lstat("/run")
            if stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022:
                return "/run/rft-sandbox"
        return "/tmp/rft-sandbox-0"
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg.startswith("/"):
        with contextlib.suppress(OSError):
            st = os.lstat(xdg)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == uid and not st.st_mode & 0o077:
                return os.path.join(xdg, "rft-sandbox")
    return f"/tmp/rft-sandbox-{uid}"


def state_dir(lock_dir: str | None = None) -> str:
    """This user's private sandbox folder (`lock_dir`, or `default_state_dir()`), created with mode 0700
    when missing and verified (see `private_dir`). Call it on every use, not once."""
    return private_dir(lock_dir or default_state_dir())


def private_dir(path: str) -> str:
    """`path` as a verified private directory: made (mode 0700) when missing, then opened without
    following a symlink and checked: owned by this euid, no group/other bits, parents owned by root or
    this user and not writable by others (unless sticky, as /tmp). Returns the path; raises
    `SandboxUnavailable` naming the problem otherwise."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    if not name:
        raise SandboxUnavailable(f"sandbox state folder {path!r} is not a folder name")
    _check_parents(os.path.realpath(parent), path)
    try:
        os.mkdir(path, private_mode())
        os.chmod(path, private_mode())  # whatever the umask
    except FileExistsError:
        pass
    except OSError as e:
        raise SandboxUnavailable(
            f"cannot create the private sandbox folder {path}: {e}; set sandbox_options.lock_dir to a "
            "folder you can write"
        ) from None
    check_private_path(path, private_mode() ^ 0o777)
    return path


def private_mode() -> int:
    """The mode of the state folder: 0700, or 0711 for root (its per-slot uids must reach bwrap's
    runtime folder inside it; they can neither list nor write it)."""
    return 0o711 if os.geteuid() == 0 else 0o700


def check_private_path(path: str, mode_mask: int) -> None:
    """Open the folder `path` without following a symlink and `check_private_fd` it."""
    try:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        else:
            fd = -1
    except OSError as e:
        link = e.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path)  # O_DIRECTORY says ENOTDIR
        what = (
            "is a symlink"
            if link
            else "is not a folder"
            if e.errno == errno.ENOTDIR
            else f"cannot be opened ({e})"
        )
        raise SandboxUnavailable(f"sandbox state folder {path} {what}: refusing to use it; {_FIX}") from None
    if fd < 0:
        what = (
            "is a symlink"
            if stat.S_ISLNK(st.st_mode)
            else "is not a folder"
            if not stat.S_ISDIR(st.st_mode)
            else ""
        )
        if what:
            raise SandboxUnavailable(f"sandbox state folder {path} {what}: refusing to use it; {_FIX}")
        _raise_foreign(path, st.st_uid)
    try:
        check_private_fd(fd, path, mode_mask)
    finally:
        os.close(fd)


def check_private_fd(fd: int, path: str, mode_mask: int = 0o077) -> None:
    """Raise `SandboxUnavailable` unless the open directory `fd` (`path`, for the message) is owned by
    this euid and has none of the `mode_mask` permission bits."""
    st = os.fstat(fd)
    uid = os.geteuid()
    if not stat.S_ISDIR(st.st_mode):
        raise SandboxUnavailable(f"sandbox state folder {path} is not a folder; {_FIX}")
    if st.st_uid != uid:
        _raise_foreign(path, st.st_uid)
    if st.st_mode & mode_mask:
        raise SandboxUnavailable(
            f"sandbox state folder {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be private "
            f"(chmod {private_mode():o} {path}) or {_FIX}"
        )


def _check_parents(parent: str, path: str) -> None:
    """Every folder from / to `parent` is owned by root or this user and not writable by others,
    except sticky folders (as /tmp), where others cannot rename our entries."""
    uid = os.geteuid()
    current = "/"
    for part in [p for p in parent.split("/") if p] + [None]:
        st = os.stat(current) if os.path.exists(current) else None
        if st is None:
            raise SandboxUnavailable(
                f"cannot create the private sandbox folder {path}: {current} does not exist"
            )
        if st.st_uid not in (0, uid) or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
            raise SandboxUnavailable(
                f"the private sandbox folder {path} would sit under {current} (owner uid {st.st_uid}, mode "
                f"{stat.S_IMODE(st.st_mode):04o}), which other users can change; set "
                "sandbox_options.lock_dir to a folder under one only you or root can write"
            )
        if part is None:
            break
        current = os.path.join(current, part)


def check_own_tree(path: str) -> None:
    """Raise `SandboxUnavailable` unless `path` and everything under it are real folders and files (no
    symlinks, no devices) owned by this euid and writable by nobody else: a folder to be reused."""
    uid = os.geteuid()
    for root, dirs, files in os.walk(path, followlinks=False):
        for entry in [root, *(os.path.join(root, n) for n in dirs + files)]:
            st = os.lstat(entry)
            kind_ok = stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)
            if not kind_ok or st.st_uid != uid or st.st_mode & 0o022:
                what = (
                    "is a symlink"
                    if stat.S_ISLNK(st.st_mode)
                    else (f"has owner uid {st.st_uid} and mode {stat.S_IMODE(st.st_mode):04o}")
                )
                raise SandboxUnavailable(
                    f"sandbox runtime folder {path} cannot be reused: {entry} {what} (expected files of "
                    f"uid {uid}, writable by it alone); {_FIX}"
                )


def _raise_foreign(path: str, owner: int) -> None:
    raise SandboxUnavailable(
        f"sandbox state folder {path} is owned by uid {owner}, not by this user (uid {os.geteuid()}): "
        f"someone else made it, and its contents could decide your verdicts; {_FIX}"
    )
