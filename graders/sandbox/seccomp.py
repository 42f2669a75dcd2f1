"""A seccomp filter for the fork server's programs: the kernel calls no graded program needs, refused.

Built once by the server with the system's libseccomp (Debian's ``libseccomp2``, through ctypes: the
library resolves syscall names for this architecture and checks the architecture in the filter), then
installed in each program's process with one ``prctl(PR_SET_SECCOMP)``, after its namespaces, mounts,
uid and ``no_new_privs`` are in place. Calls in `DENIED` fail with EPERM (Python raises
``PermissionError``; nothing is killed), ``clone3`` fails with ENOSYS (glibc then falls back to
``clone``, whose flags the filter can read), a call from another architecture's syscall table (32-bit
``int 0x80``, x32) kills the process. Everything else is allowed.

Stdlib-only, like forkserver.py, which loads this file by path (``--seccomp PATH``).
"""

from __future__ import annotations

import ctypes
import errno
import os

__all__ = ["DENIED", "CLONE_NEW_FLAGS", "build_filter", "Installer", "install", "libseccomp_version",
           "syscall_number"]  # fmt: skip

# name -> why a graded program never needs it (one line each: README and the closing note).
DENIED: dict[str, str] = {
    "unshare": "new namespaces (a nested user namespace gives every capability inside it)",
    "setns": "joining another namespace",
    "mount": "mounting filesystems (kernel filesystem code is attack surface)",
    "umount2": "unmounting (exposing what the private root hides)",
    "pivot_root": "changing the root filesystem",
    "chroot": "changing the root directory",
    "open_tree": "the new mount API",
    "move_mount": "the new mount API",
    "mount_setattr": "the new mount API",
    "fsopen": "the new mount API",
    "fsconfig": "the new mount API",
    "fsmount": "the new mount API",
    "fspick": "the new mount API",
    "ptrace": "tracing or modifying another process",
    "process_vm_readv": "reading another process's memory",
    "process_vm_writev": "writing another process's memory",
    "pidfd_getfd": "taking a file descriptor from another process",
    "kcmp": "comparing kernel objects of other processes (an information leak)",
    "bpf": "loading eBPF programs and maps",
    "perf_event_open": "performance counters (a long record of kernel bugs, side channels)",
    "keyctl": "the kernel keyring",
    "add_key": "the kernel keyring",
    "request_key": "the kernel keyring",
    "kexec_load": "loading a new kernel",
    "kexec_file_load": "loading a new kernel",
    "init_module": "loading kernel modules",
    "finit_module": "loading kernel modules",
    "delete_module": "unloading kernel modules",
    "io_uring_setup": "io_uring (bypasses syscall filtering, frequent kernel bugs)",
    "io_uring_enter": "io_uring",
    "io_uring_register": "io_uring",
    "userfaultfd": "user page-fault handling (widens kernel race windows for exploits)",
    "acct": "process accounting",
    "swapon": "swap devices",
    "swapoff": "swap devices",
    "reboot": "rebooting",
    "settimeofday": "setting the clock",
    "clock_settime": "setting the clock",
    "clock_adjtime": "adjusting the clock",
    "adjtimex": "adjusting the clock",
    "sethostname": "renaming the host",
    "setdomainname": "renaming the domain",
    "syslog": "reading or clearing the kernel log",
    "quotactl": "disk quotas",
    "quotactl_fd": "disk quotas",
    "name_to_handle_at": "file handles (open_by_handle_at escapes a chroot)",
    "open_by_handle_at": "file handles (escapes a chroot)",
    "fanotify_init": "watching the filesystem of others",
    "lookup_dcookie": "kernel profiling",
    "vhangup": "hanging up the terminal",
    "iopl": "raw I/O port access (x86)",
    "ioperm": "raw I/O port access (x86)",
    "modify_ldt": "x86 segment tables (an old source of kernel bugs)",
    "uselib": "obsolete a.out library loading",
    "ustat": "obsolete",
    "sysfs": "obsolete",
    "_sysctl": "obsolete",
    "nfsservctl": "obsolete",
}
# Filtered by argument rather than denied outright:
#   clone        with any CLONE_NEW* flag: EPERM (plain fork and thread creation still work)
#   clone3       always ENOSYS (its flags sit behind a pointer the filter cannot read; glibc falls back)
#   personality  anything but the query (0xffffffff) gets EPERM: no ADDR_NO_RANDOMIZE, no
#                READ_IMPLIES_EXEC, no other persona. Python never sets one, and libseccomp cannot put
#                two comparisons on one argument in a rule, so "0 or 0xffffffff" is not expressible.
CLONE_NEW_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}  # CLONE_NEWTIME (0x80) is not a clone(2) flag there: those bits are clone's exit signal

_ACT_ALLOW = 0x7FFF0000
_ACT_KILL_PROCESS = 0x80000000
_FLTATR_ACT_BADARCH = 2
_FLTATR_CTL_NNP = 3
_FLTATR_CTL_OPTIMIZE = 8
_CMP_MASKED_EQ = 7
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):  # struct scmp_version
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):  # struct sock_fprog
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _libseccomp() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)  # the soname since libseccomp 2.0
    except OSError as e:
        raise OSError(
            f"libseccomp is not installed ({e}); install it (Debian/Ubuntu: apt install libseccomp2, "
            "Fedora: dnf install libseccomp) or turn the filter off with sandbox_options {seccomp: false}"
        ) from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    return lib


def libseccomp_version() -> str:
    """The version of the system's libseccomp ("2.5.4"); OSError when it is not installed."""
    v = _libseccomp().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def syscall_number(name: str) -> int:
    """This architecture's number of syscall `name` (negative where it does not exist here)."""
    nr = _libseccomp().seccomp_syscall_resolve_name(name.encode())
    if nr == -1:
        raise ValueError(f"libseccomp {libseccomp_version()} does not know the syscall {name!r}")
    return int(nr)


def build_filter() -> bytes:
    """The filter as a classic BPF program for this machine's architecture (``struct sock_filter``
    array), ready for `install`. Raises OSError when libseccomp is missing or refuses a rule."""
    lib = _libseccomp()
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:

        def check(ret: int, what: str) -> None:
            if ret < 0:
                raise OSError(-ret, f"libseccomp: {what}: {os.strerror(-ret)}")

        check(lib.seccomp_attr_set(ctx, _FLTATR_ACT_BADARCH, _ACT_KILL_PROCESS), "bad-arch action")
        check(lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 0), "no_new_privs")  # the server sets it itself
        # A binary search over syscall numbers instead of a linear scan (libseccomp >= 2.5).
        check(lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, 2), "optimize")

        def rule(action: int, name: str, *cmps: tuple[int, int, int, int]) -> None:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == -1:  # __NR_SCMP_ERROR: a name this libseccomp does not know at all
                raise OSError(f"libseccomp {libseccomp_version()} does not know the syscall {name!r}")
            args = (_ArgCmp * max(len(cmps), 1))(*(_ArgCmp(*c) for c in cmps))
            # A name that exists only on other architectures (iopl on aarch64) is a negative
            # pseudo-number: libseccomp leaves it out of this architecture's filter.
            check(lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), args), f"rule for {name}")

        eperm = _act_errno(errno.EPERM)
        for name in DENIED:
            rule(eperm, name)
        for flag in CLONE_NEW_FLAGS.values():
            rule(eperm, "clone", (0, _CMP_MASKED_EQ, flag, flag))
        rule(_act_errno(errno.ENOSYS), "clone3")
        for bit in range(32):  # the kernel reads an unsigned int: any of its low 32 bits clear
            rule(eperm, "personality", (0, _CMP_MASKED_EQ, 1 << bit, 0))
        r, w = os.pipe()
        try:
            check(lib.seccomp_export_bpf(ctx, w), "export")
            os.close(w)
            w = -1
            chunks = []
            while chunk := os.read(r, 65536):
                chunks.append(chunk)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
    finally:
        lib.seccomp_release(ctx)
    program = b"".join(chunks)
    if not program or len(program) % 8:
        raise OSError(f"libseccomp exported a malformed filter ({len(program)} bytes)")
    return program


class Installer:
    """Holds a built filter in memory so that each program's process installs it with one call."""

    def __init__(self, program: bytes) -> None:
        self._buf = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // 8, ctypes.addressof(self._buf))
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.prctl  # noqa: B018  (resolved here, not in every program's process)

    def install(self) -> None:
        """Apply the filter to this process (and all it starts); needs no_new_privs already set."""
        args = (_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(self._fprog), 0, 0)
        if self._libc.prctl(*args) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"prctl(PR_SET_SECCOMP): {os.strerror(e)}")


def install(program: bytes) -> None:
    """Apply `program` (from `build_filter`) to this process and everything it starts, irrevocably."""
    Installer(program).install()
