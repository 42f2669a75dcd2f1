"""A small fork server that runs untrusted Python programs, one at a time, each in a fresh sandbox.

Self-contained and stdlib-only: copy this file anywhere and run it with any CPython >= 3.9 on Linux:

    python3 -I -S forkserver.py [--isolate user,net,mount,pid,ipc,uts | none] [--uid N | --uid-range A:B]
        [--lock-dir DIR] [--own-userns] [--path DIR]... [--bind DIR]... [--preload MOD,...]
        [--preload-file NAME=PATH]... [--cpu N | auto] [--seccomp PATH] [--session]
    python3 -I -S forkserver.py --run-one LIMITS_JSON      (one program in this process: inside bwrap)

Each program is a fresh child of this small server (a fork, not an interpreter start). By default
(``--isolate`` all, started as root) the child is cloned straight into new user, network, mount, pid,
ipc and uts namespaces: it is pid 1 of its pid namespace (when it ends, every process it started dies),
runs as the server's unprivileged slot uid (mapped to uid 1000 inside), has no capabilities and
no_new_privs, rlimits (CPU, address space, processes, open files, file size, no core), a scrubbed
environment, only a down loopback, and a minimal read-only root (/usr, the interpreter's prefix and
``--path``/``--bind`` dirs, /dev null zero full random urandom, its own /proc) with a private
size-limited tmpfs at /tmp. A namespace that cannot be made is an error at start (the hello says so),
never a weaker sandbox. ``--own-userns`` (not root): the server first moves itself into a user and
mount namespace of its own, where it is root (uid 0 mapped to the user who started it) and can build
the same private root; each program's namespaces nest inside, its uid 1000 mapped to that user, and
with a user namespace of its own per program, RLIMIT_NPROC counts that program's processes alone.
``--isolate none`` (a container that is itself the sandbox): still the slot
uid (``--uid``, when root), the rlimits and a private working directory; after each run every process
of the slot uid is killed and its files in /tmp, /var/tmp and /dev/shm are removed. ``--cpu`` pins the
server and its programs to one allowed CPU (``auto``: the slot uid modulo their number).
``--seccomp PATH`` (rft's seccomp.py): the server builds that file's syscall filter once and each
program's process installs it last, after its namespaces, mounts, uid and no_new_privs; a filter that
cannot be built is an error at start, one that cannot be installed an error for that run.

Protocol: frames on the server's stdin (requests) and stdout (replies). A frame is
``struct.pack(">II", len(header), len(data)) + header + data``; `header` is a UTF-8 JSON object and
`data` the byte strings its ``"parts": [[name, length], ...]`` names, concatenated in that order.

- At start: ``{"type": "hello", "version": 1, "pid", "uid", "isolation": [...], "seccomp": bool,
  "python", "root_dir"}`` (`root_dir`: an empty host directory the caller may remove), or
  ``{"type": "error", "error": why}`` and exit status 2.
- ``{"type": "run", "id", "limits": {...}, "parts": [["program", n], ["stdin", m]]}``; limits, all
  optional: timeout (wall s), cpu (s), memory (address-space bytes), nproc, nofile, fsize (bytes),
  tmp (bytes of /tmp), stdout (bytes kept; more kills the program, or with stdout_discard true is
  counted and dropped), stderr (last bytes kept), result (bytes kept from fd 3). Reply: ``{"type": "result", "id", "outcome": "exited" | "signaled" |
  "timeout" | "cpu_limit" | "output_limit", "exit_code", "signal", "wall_s", "cpu_s", "cpu_wait_s",
  "truncated": {"stdout", "stderr", "result"}, "stdout_dropped", "parts": [["stdout", a], ["stderr", b], ["result",
  c]]}``, or ``{"type": "error", "id", "error": why}`` when that run could not be set up.
- ``--session`` (a server per long-lived program): after the hello, one ``{"type": "session", "limits",
  "parts": [["program", n]]}``; the program then owns the server's stdin and stdout (see `_serve_session`).
- ``{"type": "ping"}`` gets ``{"type": "pong"}``. EOF on stdin: the server exits (and dies with
  the process that started it).

The program is Python source run as ``__main__``; fd 3 is its result channel. ``--run-one`` reads
``[u64 length][program]`` from stdin and leaves the rest of stdin to the program.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import select
import signal
import socket
import struct
import sys
import time

VERSION = 1
INNER_ID = 1000  # uid and gid of the program inside its user namespace
NAMESPACES = ("user", "net", "mount", "pid", "ipc", "uts")
_CLONE = {"user": 0x10000000, "net": 0x40000000, "mount": 0x00020000, "pid": 0x20000000,
          "ipc": 0x08000000, "uts": 0x04000000}  # fmt: skip
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(platform.machine())
_DEFAULT_LIMITS = {"timeout": 10.0, "cpu": 11, "memory": 1 << 30, "nproc": 32, "nofile": 64,
                   "fsize": 16 << 20, "tmp": 64 << 20, "stdout": 1 << 20, "stderr": 8192,
                   "result": 1 << 20}  # fmt: skip
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
       "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    """The sandbox could not be set up (for the server, or for one run)."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        e = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(e)} (errno {e})")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    src_b, dst_b, fs_b, data_b = (None if x is None else x.encode() for x in (src, dst, fstype, data))
    _check(_libc.mount(src_b, dst_b, fs_b, ctypes.c_ulong(flags), data_b), f"mount {src or ''} on {dst}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:  # one write(2), as /proc/<pid>/uid_map wants
        f.write(text)


# ---- framing ----------------------------------------------------------------------------------------


def _read_exact(fd: int, n: int) -> bytearray | None:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            return None
        got += k
    return buf


def read_frame(fd: int) -> tuple[dict, dict[str, memoryview]] | None:
    """One frame from `fd`: (header, {part name: bytes}), or None at EOF."""
    head = _read_exact(fd, 8)
    if head is None:
        return None
    hlen, dlen = struct.unpack(">II", head)
    header_bytes = _read_exact(fd, hlen)
    data = _read_exact(fd, dlen)
    if header_bytes is None or data is None:
        return None
    header = json.loads(bytes(header_bytes))
    parts, pos, view = {}, 0, memoryview(data)
    for name, length in header.get("parts", []):
        parts[name] = view[pos : pos + length]
        pos += length
    return header, parts


def write_frame(
    fd: int, header: dict, parts: dict[str, bytes | bytearray | memoryview] | None = None
) -> None:
    parts = parts or {}
    header = dict(header, parts=[[k, len(v)] for k, v in parts.items()])
    hb = json.dumps(header).encode()
    chunks = [struct.pack(">II", len(hb), sum(len(v) for v in parts.values())), hb, *parts.values()]
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


# ---- running the program (in the sandboxed process) --------------------------------------------------


def set_limits(lim: dict) -> None:
    import resource

    for res, value in ((resource.RLIMIT_AS, lim["memory"]), (resource.RLIMIT_NPROC, lim["nproc"]),
                       (resource.RLIMIT_NOFILE, lim["nofile"]), (resource.RLIMIT_FSIZE, lim["fsize"]),
                       (resource.RLIMIT_CORE, 0)):  # fmt: skip
        resource.setrlimit(res, (value, value))
    resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu"], lim["cpu"] + 1))


def run_program(source: bytes | bytearray | memoryview, home: str = "/tmp") -> None:
    """Run `source` as ``__main__`` in this process with fds 0-3 already in place; never returns."""
    import types

    code = 0
    if dict(os.environ) != dict(ENV, HOME=home, TMPDIR=home):  # the server keeps ENV as its own
        os.environ.clear()
        os.environ.update(ENV, HOME=home, TMPDIR=home)
    sys.argv = ["program"]
    sys.stdin, sys.stdout, sys.stderr = _STDIO or _make_stdio()
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    try:
        exec(compile(bytes(source), "<program>", "exec", dont_inherit=True), main.__dict__)
    except SystemExit as e:
        code = 0 if e.code is None else e.code & 0xFF if isinstance(e.code, int) else 1
        if not isinstance(e.code, (int, type(None))):  # noqa: UP038  (3.9)
            _report(print, e.code, file=sys.stderr)
    except BaseException as e:
        import traceback

        code = 1
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None  # not this function's frame
        _report(traceback.print_exception, type(e), e, tb)
    for step in (_join_threads, _run_atexit, sys.stdout.flush, sys.stderr.flush):
        _report(step)
    os._exit(code)


def _make_stdio() -> list:
    """Text streams over fds 0, 1 and 2 (made once in the server, used in each program's process)."""
    import io

    return [
        io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8", errors="replace"),
        io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace"),
        io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                         line_buffering=True),
    ]  # fmt: skip


_STDIO: list = []


def _join_threads() -> None:
    if "threading" in sys.modules:
        sys.modules["threading"]._shutdown()  # as the interpreter does at exit


def _run_atexit() -> None:
    import atexit

    atexit._run_exitfuncs()


def _report(step, *args, **kwargs) -> None:
    """Call `step`; whatever it raises (a closed stdout, a broken atexit handler) is not ours to handle."""
    try:  # noqa: SIM105  (no contextlib: programs' processes import nothing they do not need)
        step(*args, **kwargs)
    except BaseException:
        pass


def run_one_main(limits_json: str) -> None:
    """``--run-one``: this process is already the sandbox (bubblewrap). Read ``[u64 n][program]`` from
    stdin, set the limits, move the result channel (fd number in the limits as "result_fd") to 3, run."""
    lim = dict(_DEFAULT_LIMITS, **json.loads(limits_json))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # rft_harness.py may sit beside us
    head = _read_exact(0, 8)
    source = _read_exact(0, struct.unpack(">Q", head)[0]) if head is not None else None
    if source is None:
        os._exit(121)
    result_fd = int(lim.get("result_fd", 3))
    if result_fd != 3:
        os.dup2(result_fd, 3)
    os.closerange(4, 1 << 16)
    set_limits(lim)
    os.chdir("/tmp")
    run_program(source)


# ---- the server side ---------------------------------------------------------------------------------


class Server:
    def __init__(self, isolate: tuple[str, ...], uid: int | None, paths: list[str], binds: list[str],
                 lock_dir: str, own_userns: bool = False, seccomp=None) -> None:  # fmt: skip
        self.isolate, self.uid, self.paths, self.binds, self.lock_dir = isolate, uid, paths, binds, lock_dir
        self.own_userns = own_userns
        self.seccomp = seccomp  # seccomp.py's Installer, or None
        self.root_dir: str | None = None

    # -- once, at start

    def setup(self) -> None:
        if self.uid is not None and os.geteuid() != 0:
            raise SetupError("--uid needs the server to start as root (it switches each program to that uid)")
        if "user" not in self.isolate and set(self.isolate) and os.geteuid() != 0:
            raise SetupError("namespaces without 'user' need root")
        if self.isolate and _SYS_CLONE is None:
            raise SetupError(f"namespaces are not supported on {platform.machine()}; use --isolate none")
        if self.own_userns:
            self._enter_own_userns()
        elif os.geteuid() == 0:
            os.setgroups([])  # programs must not inherit root's supplementary groups
        if "mount" in self.isolate:
            self._minimal_root()

    def _enter_own_userns(self) -> None:
        """Not root: become root of a new user namespace (mapped to this user) with a private mount
        namespace, so that the rest of the set-up needs no privilege on the host."""
        if os.geteuid() == 0:
            raise SetupError("--own-userns is for servers started by a user other than root")
        if "user" not in self.isolate:
            raise SetupError("--own-userns needs 'user' in --isolate (each program's own user namespace)")
        uid, gid = os.geteuid(), os.getegid()
        _check(_libc.unshare(_CLONE["user"] | _CLONE["mount"]), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1\n")
            _write("/proc/self/gid_map", f"0 {gid} 1\n")
        except OSError as e:
            raise SetupError(f"mapping the server's user namespace: {e}") from None

    def _minimal_root(self) -> None:
        """Move this server into a private mount namespace whose root is a read-only tmpfs holding only
        what a Python program needs; every program's mount namespace is a copy of it."""
        import tempfile

        if _PIVOT_ROOT is None:
            raise SetupError(f"mount isolation is not supported on {platform.machine()}")
        if os.geteuid() != 0:
            raise SetupError("mount isolation needs the server to start as root")
        _check(_libc.unshare(_CLONE["mount"]), "unshare(CLONE_NEWNS)")
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        if self.uid is None:
            root = tempfile.mkdtemp(
                prefix="root-" if self.lock_dir else "rft-sandbox-root-", dir=self.lock_dir or None
            )
        else:  # one mount point per uid slot: a server killed before its client removed it leaves one
            root = f"{self.lock_dir}/root-{self.uid}"
            os.makedirs(root, mode=0o755, exist_ok=True)
        self.root_dir = root
        _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755")
        ro = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/alternatives",
              "/etc/ld.so.cache", "/etc/localtime"]  # fmt: skip
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        ro += sorted(prefixes | set(self.paths) | set(self.binds))
        for path in ro:
            self._ro_bind(root, path)
        for d in ("tmp", "proc", "dev", "etc"):
            os.makedirs(f"{root}/{d}", mode=0o755, exist_ok=True)
        with open(f"{root}/etc/passwd", "w") as f:
            f.write(f"root:x:0:0::/:/bin/sh\nsandbox:x:{INNER_ID}:{INNER_ID}::/tmp:/bin/sh\n")
        with open(f"{root}/etc/group", "w") as f:
            f.write(f"root:x:0:\nsandbox:x:{INNER_ID}:\n")
        if self.own_userns:  # a new proc needs host privilege here: the host's, for programs to mount over
            _mount("/proc", f"{root}/proc", None, MS_BIND | MS_REC)
        else:
            _mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _mount("tmpfs", f"{root}/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
        for node in ("null", "zero", "full", "random", "urandom"):
            open(f"{root}/dev/{node}", "w").close()
            _mount(f"/dev/{node}", f"{root}/dev/{node}", None, MS_BIND)
            _mount(None, f"{root}/dev/{node}", None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NOEXEC)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
            os.symlink(target, f"{root}/dev/{name}")
        _mount(
            None, f"{root}/dev", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755"
        )
        os.chdir(root)
        _check(_libc.syscall(_PIVOT_ROOT, b".", b"."), "pivot_root")
        _check(_libc.umount2(b".", MNT_DETACH), "umount the old root")
        os.chdir("/")
        _mount(
            None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755"
        )

    @staticmethod
    def _ro_bind(root: str, path: str) -> None:
        if not os.path.lexists(path) or os.path.lexists(root + path):
            return
        os.makedirs(os.path.dirname(root + path), mode=0o755, exist_ok=True)
        if os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
            return
        if os.path.isdir(path):
            os.mkdir(root + path, 0o755)
        else:
            open(root + path, "w").close()
        _mount(path, root + path, None, MS_BIND)
        # noexec on the source stays (in a user namespace it is locked: dropping it would fail)
        noexec = MS_NOEXEC if os.statvfs(path).f_flag & os.ST_NOEXEC else 0
        _mount(None, root + path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | noexec)

    # -- per run

    def run(self, source: memoryview, stdin: memoryview, lim: dict) -> dict:
        """Run one program; the reply header, with its parts under "_parts"."""
        workdir = None
        if "mount" not in self.isolate:  # no private /tmp: a fresh directory of its own instead
            import tempfile

            workdir = tempfile.mkdtemp(prefix="rft-run-")
            if self.uid is not None:
                os.chown(workdir, self.uid, self.uid)
        (in_r, in_w), (out_r, out_w), (err_r, err_w), (res_r, res_w) = (os.pipe() for _ in range(4))
        sync, child_sync = socket.socketpair()  # go (server -> child), setup errors (child -> server)
        start = time.monotonic()
        pid = self._spawn()
        if pid == 0:  # the child: never returns
            for fd in (0, 1, in_w, out_r, err_r, res_r, sync.fileno()):  # 0 and 1 talk to our client
                os.close(fd)
            self._child(source, lim, workdir, in_r, out_w, err_w, res_w, child_sync.fileno())
        for fd in (in_r, out_w, err_w, res_w):
            os.close(fd)
        child_sync.close()
        try:
            error = self._map_ids(pid)
            sync.send(b"g" if error is None else b"x")
            if error is not None:
                os.kill(pid, signal.SIGKILL)
            reply = _supervise(pid, start, lim, in_w, stdin, out_r, err_r, res_r, sync, self._cleanup)
            return {"type": "error", "error": error} if error else reply
        finally:
            for fd in (out_r, err_r, res_r):
                os.close(fd)
            sync.close()
            if workdir is not None:
                import shutil

                shutil.rmtree(workdir, ignore_errors=True)

    def _spawn(self) -> int:
        """fork(), into new namespaces when asked: with a new pid namespace the child is its pid 1."""
        flags = 0
        for ns in self.isolate:
            flags |= _CLONE[ns]
        if not flags:
            return os.fork()
        pid = _libc.syscall(_SYS_CLONE, ctypes.c_ulong(flags | signal.SIGCHLD), None, None, None, None)
        if pid < 0:
            e = ctypes.get_errno()
            raise SetupError(f"clone({','.join(self.isolate)}): {os.strerror(e)} (errno {e})")
        if pid == 0 and "random" in sys.modules:  # what os.fork's at-fork hook would do
            sys.modules["random"].seed()
        return pid

    def _map_ids(self, pid: int) -> str | None:
        """Map the child's user namespace: inside uid/gid INNER_ID is the slot's uid outside."""
        if "user" not in self.isolate:
            return None
        uid = self.uid if self.uid is not None else os.geteuid()
        gid = self.uid if self.uid is not None else os.getegid()
        try:
            _write(f"/proc/{pid}/setgroups", "deny")
            _write(f"/proc/{pid}/uid_map", f"{INNER_ID} {uid} 1\n")
            _write(f"/proc/{pid}/gid_map", f"{INNER_ID} {gid} 1\n")
        except OSError as e:
            return f"sandbox setup failed: mapping the user namespace: {e}"
        return None

    def _cleanup(self, pid: int) -> None:
        """After the program ends: nothing of it may keep running."""
        if "pid" in self.isolate:
            return  # its pid namespace died with it
        if self.uid is not None:
            kill_uid(self.uid)
            _remove_files_of(self.uid)
        else:
            _report(os.killpg, pid, signal.SIGKILL)

    def _child(self, source: memoryview, lim: dict, workdir: str | None, in_r: int, out_w: int, err_w: int,
               res_w: int, sync: int) -> None:  # fmt: skip
        try:
            if os.read(sync, 1) != b"g":
                os._exit(120)
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as Python has it by default
            os.setsid()
            ident = INNER_ID if "user" in self.isolate else self.uid
            if "mount" in self.isolate:
                owner = f",uid={ident},gid={ident}" if ident is not None else ""
                _mount(
                    "tmpfs",
                    "/tmp",
                    "tmpfs",
                    MS_NOSUID | MS_NODEV,
                    f"size={lim['tmp']},nr_inodes=4096,mode=0700{owner}",
                )
                if "pid" in self.isolate:  # a /proc that shows only its own processes
                    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            if "uts" in self.isolate:
                _check(_libc.sethostname(b"sandbox", 7), "sethostname")
            if ident is not None:
                os.setresgid(ident, ident, ident)
                os.setresuid(ident, ident, ident)  # from real root this also drops every capability
            _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL), "prctl(PDEATHSIG)")  # after the uid change
            _drop_capabilities()
            _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
            os.chdir(workdir or "/tmp")
            set_limits(lim)
            for src, dst in ((in_r, 0), (out_w, 1), (err_w, 2), (res_w, 3)):
                os.dup2(src, dst)
            if self.seccomp is not None:  # last, while the sync socket can still report a failure
                self.seccomp.install()
            os.closerange(4, 1 << 16)  # the sync socket too: the program cannot report for us
        except BaseException as e:
            try:
                os.write(sync, f"{type(e).__name__}: {e}".encode()[:4000])
            finally:
                os._exit(120)
        run_program(source, workdir or "/tmp")


def _serve_session(server: Server) -> int:
    """``--session``: after the hello, one ``{"type": "session", "limits", "parts": [["program", n]]}``
    frame; the program then runs in a sandbox as ``run`` gives it, with this server's stdin and stdout
    as its own fds 0 and 1 (the caller speaks to it directly; the server closes its copies) and its
    stderr on the server's. When it ends, the server cleans up and writes one JSON line to its stderr,
    ``rft-session-end {"exit_code", "signal", "cpu_s", "wall_s"}``, and exits. Killing the server kills
    the program (PDEATHSIG; with a pid namespace, every process it started)."""
    frame = read_frame(0)
    if frame is None:
        return 0
    header, parts = frame
    if header.get("type") != "session":
        write_frame(1, {"type": "error", "error": f"expected a session request, not {header.get('type')!r}"})
        return 2
    lim = dict(_DEFAULT_LIMITS, **header.get("limits", {}))
    source = bytes(parts.get("program", b""))
    workdir = None
    if "mount" not in server.isolate:
        import tempfile

        workdir = tempfile.mkdtemp(prefix="rft-session-")
        if server.uid is not None:
            os.chown(workdir, server.uid, server.uid)
    null = os.open(os.devnull, os.O_WRONLY)
    in_r, out_w, err_w, res_w = os.dup(0), os.dup(1), os.dup(2), os.dup(null)
    sync, child_sync = socket.socketpair()
    start = time.monotonic()
    pid = server._spawn()
    if pid == 0:
        sync.close()
        server._child(memoryview(source), lim, workdir, in_r, out_w, err_w, res_w, child_sync.fileno())
    for fd in (in_r, out_w, res_w):
        os.close(fd)
    os.dup2(null, 0)  # the channel is the program's alone: EOF reaches the caller when it ends
    os.dup2(null, 1)
    child_sync.close()
    error = server._map_ids(pid)
    sync.send(b"g" if error is None else b"x")
    if error is not None:
        os.kill(pid, signal.SIGKILL)
    _, status, ru = os.wait4(pid, 0)
    server._cleanup(pid)
    sync.setblocking(False)
    try:
        note = sync.recv(4096).decode(errors="replace")  # what went wrong setting the child up
    except OSError:  # nothing: it set up fine
        note = ""
    error = error or note
    end = {"exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
           "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
           "cpu_s": round(ru.ru_utime + ru.ru_stime, 6), "wall_s": round(time.monotonic() - start, 6),
           "error": error or None}  # fmt: skip
    os.write(err_w, b"\nrft-session-end " + json.dumps(end).encode() + b"\n")
    if workdir is not None:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _remove_files_of(uid: int) -> None:
    """Without a private /tmp, what the program left in the shared writable places goes with it."""
    import shutil

    for place in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(place))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_CAPS_NONE = (_CapHeader(0x20080522, 0), (_CapData * 2)())  # _LINUX_CAPABILITY_VERSION_3, all zero


def _drop_capabilities() -> None:
    """No capabilities at all (a process that made a user namespace has all of them inside it)."""
    _check(_libc.capset(ctypes.byref(_CAPS_NONE[0]), ctypes.byref(_CAPS_NONE[1])), "capset")


def kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid` (from a helper that takes that uid: kill(-1) as that user)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for _ in range(100):
                os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


class Collector:
    """Pumps a running program's stdin and collects its outputs under the caps of `lim`."""

    def __init__(self, lim: dict, in_w: int, stdin: memoryview, out_r: int, err_r: int, res_r: int) -> None:
        self.lim = lim
        self.in_w = in_w
        self.todo = memoryview(stdin)
        self.bufs = {out_r: bytearray(), err_r: bytearray(), res_r: bytearray()}
        self.out_r, self.err_r, self.res_r = out_r, err_r, res_r
        self.truncated = {out_r: False, err_r: False, res_r: False}
        self.open = {out_r, err_r, res_r}
        self.overflow = False  # stdout passed its limit (and the program is to be killed for it)
        self.dropped = 0  # stdout bytes past the limit thrown away (lim["stdout_discard"])
        os.set_blocking(in_w, False)
        if not stdin:
            os.close(in_w)
            self.in_w = -1

    def fds(self) -> tuple[list[int], list[int]]:
        return list(self.open), ([self.in_w] if self.in_w >= 0 else [])

    def handle(self, readable: list[int], writable: list[int]) -> None:
        if writable:
            try:
                self.todo = self.todo[os.write(self.in_w, self.todo[:65536]) :]
            except BlockingIOError:
                pass
            except OSError:  # EPIPE: the program does not read the rest
                self.todo = self.todo[:0]
            if not self.todo:
                os.close(self.in_w)
                self.in_w = -1
        for fd in readable:
            if fd not in self.open:
                continue
            data = os.read(fd, 65536)
            if not data:
                self.open.discard(fd)
                continue
            buf = self.bufs[fd]
            if fd == self.err_r:  # keep the tail
                buf += data
                if len(buf) > self.lim["stderr"]:
                    del buf[: len(buf) - self.lim["stderr"]]
                    self.truncated[fd] = True
                continue
            cap = self.lim["stdout"] if fd == self.out_r else self.lim["result"]
            room = cap - len(buf)
            buf += data[: max(room, 0)]
            if len(data) > room:
                self.truncated[fd] = True
                if fd == self.out_r and self.lim.get("stdout_discard"):
                    self.dropped += len(data) - max(room, 0)
                else:
                    self.overflow = self.overflow or fd == self.out_r

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self.open and (left := end - time.monotonic()) > 0:
            r, _, _ = select.select(list(self.open), [], [], left)
            self.handle(r, [])

    def close_stdin(self) -> None:
        if self.in_w >= 0:
            os.close(self.in_w)
            self.in_w = -1


def _supervise(pid: int, start: float, lim: dict, in_w: int, stdin: memoryview, out_r: int, err_r: int,
               res_r: int, sync: socket.socket, cleanup) -> dict:  # fmt: skip
    """Feed stdin, collect outputs, and end the run at its exit, its deadline or its output limit."""
    col = Collector(lim, in_w, stdin, out_r, err_r, res_r)
    pidfd = os.pidfd_open(pid)
    outcome, cpu_wait = "done", None
    deadline = start + float(lim["timeout"])
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or col.overflow:
                outcome = "timeout" if left <= 0 else "output_limit"
                cpu_wait = _wait_time(pid)  # before the kill, while it exists
                os.kill(pid, signal.SIGKILL)
                break
            rfds, wfds = col.fds()
            r, w, _ = select.select([*rfds, pidfd], wfds, [], left)
            col.handle([fd for fd in r if fd != pidfd], w)
            if pidfd in r:
                break
    finally:
        os.close(pidfd)
    col.close_stdin()
    _, status, ru = os.wait4(pid, 0)
    wall = time.monotonic() - start
    cpu = ru.ru_utime + ru.ru_stime
    cleanup(pid)
    col.drain(0.2)
    sync.setblocking(False)
    try:
        error = sync.recv(4096).decode(errors="replace")
    except OSError:
        error = ""
    if error:
        return {"type": "error", "error": f"sandbox setup failed: {error}"}
    reply: dict = {"type": "result", "outcome": outcome, "exit_code": None, "signal": None}
    if outcome == "done":
        if os.WIFEXITED(status):
            reply.update(outcome="exited", exit_code=os.WEXITSTATUS(status))
        else:
            sig = os.WTERMSIG(status)
            cpu_hit = sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= lim["cpu"] - 0.05)
            reply.update(outcome="cpu_limit" if cpu_hit else "signaled", signal=sig)
    reply.update(wall_s=round(wall, 6), cpu_s=round(cpu, 6), cpu_wait_s=cpu_wait)
    reply["truncated"] = {
        "stdout": col.truncated[out_r],
        "stderr": col.truncated[err_r],
        "result": col.truncated[res_r],
    }
    reply["stdout_dropped"] = col.dropped
    reply["_parts"] = {"stdout": col.bufs[out_r], "stderr": col.bufs[err_r], "result": col.bufs[res_r]}
    return reply


def _wait_time(pid: int) -> float | None:
    """Seconds `pid` has been runnable but waiting for a CPU (None where the kernel does not say)."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            return round(int(f.read().split()[1]) / 1e9, 6)
    except (OSError, ValueError, IndexError):
        return None


# ---- uid slots ---------------------------------------------------------------------------------------


def acquire_uid(first: int, last: int, lock_dir: str) -> tuple[int, int]:
    """The first uid in [first, last] that no other live sandbox holds, and the fd of its lock (keep it
    open for as long as the uid is in use)."""
    import fcntl

    if not lock_dir:
        raise SetupError("--uid-range needs --lock-dir (a folder only this user can write)")
    for uid in range(first, last + 1):
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(f"{lock_dir}/uid-{uid}.lock", flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                continue
            raise
        return uid, fd
    raise SetupError(
        f"every sandbox uid in {first}..{last} is in use (locks in {lock_dir}); widen --uid-range"
    )


# ---- main --------------------------------------------------------------------------------------------


def _parse_args(argv: list[str]) -> dict:
    opts: dict = {"isolate": ",".join(NAMESPACES), "uid": None, "uid_range": None, "lock_dir": "", "own_userns": False,
                  "path": [], "bind": [], "preload": "", "preload_file": [], "cpu": None,
                  "seccomp": None, "session": False}  # fmt: skip
    it = iter(argv)
    for arg in it:
        key = arg.lstrip("-").replace("-", "_")
        if key not in opts:
            raise SetupError(f"unknown option {arg}")
        if key in ("path", "bind", "preload_file"):
            opts[key].append(next(it))
        elif key in ("own_userns", "session"):
            opts[key] = True
        else:
            opts[key] = next(it)
    return opts


def _preload(modules: str, files: list[str]) -> None:
    """Import `modules` (comma-separated) and run each ``NAME=PATH`` file as module NAME, once, here:
    every program's process then has them without loading them again."""
    import importlib
    import types

    for name in filter(None, modules.split(",")):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise SetupError(f"--preload {name}: {e}") from None
    for spec in files:
        name, _, path = spec.partition("=")
        with open(path, encoding="utf-8") as f:
            source = f.read()
        module = types.ModuleType(name)
        module.__file__ = f"<{name}>"
        exec(compile(source, f"<{name}>", "exec"), module.__dict__)
        sys.modules[name] = module


def _load_seccomp(path: str):
    """``--seccomp PATH``: run rft's seccomp.py (stdlib-only) from its path and build its filter here,
    once; what each program's process then installs with one prctl."""
    import types

    module = types.ModuleType("rft_seccomp")
    module.__file__ = path
    with open(path, encoding="utf-8") as f:
        exec(compile(f.read(), path, "exec"), module.__dict__)
    try:
        return module.Installer(module.build_filter())
    except OSError as e:
        raise SetupError(f"--seccomp: the syscall filter cannot be built here: {e}") from None


def serve(argv: list[str]) -> int:
    """The fork server's main loop (see the module docstring)."""
    import io  # noqa: F401  (imported here once, not in every program's process)
    import resource  # noqa: F401
    import types  # noqa: F401

    out = 1
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the server dies with its client
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        opts = _parse_args(argv)
        isolate = () if opts["isolate"] in ("", "none") else tuple(opts["isolate"].split(","))
        bad = [ns for ns in isolate if ns not in NAMESPACES]
        if bad:
            raise SetupError(
                f"unknown namespace(s) {bad}; --isolate takes a subset of {','.join(NAMESPACES)}"
            )
        uid, lock_fd = None, None
        if opts["uid"] is not None:
            uid = int(opts["uid"])
        elif opts["uid_range"] is not None:
            first, last = (int(x) for x in opts["uid_range"].split(":"))
            uid, lock_fd = acquire_uid(first, last, opts["lock_dir"])
        sys.path[:] = [p for p in opts["path"] if os.path.isdir(p)] + sys.path
        if opts["cpu"] is not None:  # this server and its programs on one CPU: fewer migrations, wakeups
            cpus = sorted(os.sched_getaffinity(0))
            index = (uid or os.getpid()) if opts["cpu"] == "auto" else int(opts["cpu"])
            os.sched_setaffinity(0, {cpus[index % len(cpus)]})
        _preload(opts["preload"], opts["preload_file"])
        seccomp = _load_seccomp(opts["seccomp"]) if opts["seccomp"] else None
        server = Server(
            isolate, uid, opts["path"], opts["bind"], opts["lock_dir"], opts["own_userns"], seccomp
        )
        server.setup()
        # A first run proves the isolation works here before anyone relies on it.
        probe_src = "import os; print(os.getuid())"
        expect = str(INNER_ID if "user" in isolate else (uid if uid is not None else os.getuid()))
        if seccomp is not None:  # and that the filter is on ("Seccomp: 2": filter mode)
            probe_src += "; print(open('/proc/self/status').read().split('Seccomp:')[1].split()[0])"
            expect += "\n2"
        probe = server.run(memoryview(probe_src.encode()), memoryview(b""), dict(_DEFAULT_LIMITS))
        got = bytes(probe.get("_parts", {}).get("stdout", b"")).decode(errors="replace").strip()
        if probe.get("type") != "result" or probe.get("exit_code") != 0 or got != expect:
            why = probe.get("error") or bytes(probe.get("_parts", {}).get("stderr", b""))[-2000:].decode(
                errors="replace"
            )
            what = "uid and seccomp mode" if seccomp is not None else "uid"
            raise SetupError(
                f"a test program did not run in the sandbox ({why or probe}; {what} {got!r}, not {expect!r})"
            )
    except (SetupError, OSError, ValueError) as e:
        write_frame(out, {"type": "error", "error": str(e)})
        return 2
    # What every program's process would otherwise build again: libc functions, stdio, the environment.
    for name in ("mount", "prctl", "capset", "sethostname", "syscall"):
        getattr(_libc, name)
    _STDIO[:] = _make_stdio()
    os.environ.clear()
    os.environ.update(ENV)
    import gc

    gc.collect()
    gc.freeze()  # collections in a program's process then leave the server's objects (and pages) alone
    hello = {"type": "hello", "version": VERSION, "pid": os.getpid(), "uid": uid, "isolation": list(isolate),
             "seccomp": seccomp is not None, "python": platform.python_version(),
             "root_dir": server.root_dir}  # fmt: skip
    write_frame(out, hello)
    # lock_fd stays open (and the uid locked) until the server exits
    if opts["session"]:
        return _serve_session(server)
    while True:
        frame = read_frame(0)
        if frame is None:
            return 0
        header, parts = frame
        kind = header.get("type")
        if kind == "ping":
            write_frame(out, {"type": "pong"})
            continue
        if kind != "run":
            write_frame(
                out, {"type": "error", "id": header.get("id"), "error": f"unknown request type {kind!r}"}
            )
            continue
        lim = dict(_DEFAULT_LIMITS, **header.get("limits", {}))
        try:
            reply = server.run(
                parts.get("program", memoryview(b"")), parts.get("stdin", memoryview(b"")), lim
            )
        except (OSError, SetupError) as e:
            reply = {"type": "error", "error": f"sandbox failed: {e}"}
        reply_parts = reply.pop("_parts", None)
        reply["id"] = header.get("id")
        write_frame(out, reply, reply_parts)
        for buf in [*(reply_parts or {}).values(), *parts.values()]:  # leave nothing for the next run to find
            buf[:] = bytes(len(buf))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--run-one":
        run_one_main(sys.argv[2])
    sys.exit(serve(sys.argv[1:]))
