"""C++ on the `code` grader's stdin/stdout cases (``"language": "cpp"``), on every sandbox backend that can
run here: compile once in the sandbox, run each case against the binary, judge outside; compile errors
score 0 with the compiler's message; C++ attacks are contained as Python ones are (test_code_attacks)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
from pathlib import Path

import pytest
from _sandboxes import BACKENDS, backend_or_skip, processes_of, sandbox_uid

from rft.graders import GraderSpecError, load_grader
from rft.graders.code import extract_code
from rft.graders.code_cpp import CompilerOptions, compile_cpp
from rft.graders.sandbox import ExecResult, Limits

SECRET = "rft-cpp-secret-" + secrets.token_hex(8)
CASES = {"cases": [{"input": "1 2\n", "output": "3\n"}, {"input": "10 -4\n", "output": "6\n"}]}
APLUSB = """#include <iostream>
int main() {
    long long a, b;
    std::cin >> a >> b;
    std::cout << a + b << "\\n";
}
"""


def fenced(code: str, tag: str = "cpp") -> str:
    return f"Here is my solution:\n\n```{tag}\n{code}```\n"


def grader(backend: str, **spec):
    return load_grader(
        {
            "type": "code",
            "language": "cpp",
            "cases": "{{ item.cases }}",
            "sandbox": backend,
            "run_timeout": 2.0,
            "memory_mb": 512,
            **spec,
        }
    )


@pytest.fixture(params=[pytest.param(b, marks=pytest.mark.docker) if b == "docker" else b for b in BACKENDS])
def backend(request):
    box = backend_or_skip(request.param)
    g = grader(request.param)
    probe = g.grade({"output_text": fenced(APLUSB)}, CASES)
    if request.param == "docker" and probe.status == "error":  # the default image has Python only
        assert "no g++" in probe.details["error"] and "image" in probe.details["error"], probe
        pytest.skip("the docker image has no g++ (the grade says so)")
    assert probe.passed, probe
    return request.param, box


@pytest.fixture(scope="module")
def secret_file():
    d = tempfile.mkdtemp(prefix="rft-cpp-secret-")
    os.chmod(d, 0o755)
    path = Path(d) / "secret.txt"
    path.write_text(SECRET)
    path.chmod(0o644)
    yield path
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()[1]
    s.close()


# ---- verdicts ---------------------------------------------------------------------------------------


def test_correct_program_passes_and_wrong_answer_fails(backend):
    name, _ = backend
    g = grader(name)
    grade = g.grade({"output_text": fenced(APLUSB, "c++")}, CASES)
    assert grade.passed and grade.score == 1.0 and grade.status == "ok", grade
    assert grade.details["compile"]["binary_bytes"] > 0 and grade.details["sandbox"] == name
    wrong = g.grade({"output_text": fenced(APLUSB.replace("a + b", "a - b"))}, CASES)
    assert wrong.status == "ok" and wrong.score == 0 and not wrong.passed, wrong
    assert "wrong answer" in wrong.details["cases"][0]["error"]
    half = g.grade({"output_text": fenced('#include <cstdio>\nint main() { puts("3"); }\n')}, CASES)
    assert half.status == "ok" and half.score == 0.5, half


def test_a_program_seen_before_is_not_compiled_again():
    g = grader("local")
    source = APLUSB + f"// {secrets.token_hex(4)}\n"
    first, again = (g.grade({"output_text": fenced(source)}, CASES) for _ in range(2))
    assert first.passed and again.passed, (first, again)
    assert "cached" not in first.details["compile"] and again.details["compile"]["cached"] is True
    other_flags = grader("local", compiler={"flags": ["-O0"]}).grade({"output_text": fenced(source)}, CASES)
    assert other_flags.passed and "cached" not in other_flags.details["compile"]
    broken = "int main() { return nope; }\n" + f"// {secrets.token_hex(4)}\n"
    errors = [g.grade({"output_text": fenced(broken)}, CASES) for _ in range(2)]
    assert errors[0].details["compile_error"] == errors[1].details["compile_error"]
    assert errors[1].details["compile"]["cached"] is True and errors[1].score == 0


def test_compile_error_is_a_zero_with_the_message(backend):
    name, _ = backend
    grade = grader(name).grade({"output_text": fenced("int main() { return undeclared; }\n")}, CASES)
    assert grade.status == "ok" and grade.score == 0 and not grade.passed, grade
    assert "undeclared" in grade.details["compile_error"] and "error" in grade.details["compile_error"]
    assert grade.details["total_cases"] == 2 and "cases" not in grade.details  # nothing was run


def test_compile_message_is_truncated():
    errors = "\n".join(f"int f{i}() {{ return missing{i}; }}" for i in range(400)) + "\nint main() {}\n"
    grade = grader("local").grade({"output_text": fenced(errors)}, CASES)
    assert grade.score == 0 and 100 < len(grade.details["compile_error"]) <= 2000, grade


def test_infinite_loop_times_out_each_case(backend):
    name, _ = backend
    loop = "int main() { volatile unsigned x = 0; for (;;) x++; }\n"
    grade = grader(name, run_timeout=1.0).grade({"output_text": fenced(loop)}, CASES)
    assert grade.status in ("ok", "timeout") and not grade.passed, grade
    if grade.status == "ok":
        assert all("time limit" in c["error"] for c in grade.details["cases"]), grade


def test_big_output_is_cut_and_fails(backend):
    name, _ = backend
    flood = (
        '#include <cstdio>\nint main() { for (;;) fputs("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\n", stdout); }\n'
    )
    grade = grader(name).grade({"output_text": fenced(flood)}, CASES)
    assert grade.status == "ok" and grade.score == 0, grade
    assert all("output limit" in c["error"] for c in grade.details["cases"]), grade


def test_crashes_and_exit_codes_fail(backend):
    name, _ = backend
    g = grader(name)
    segv = APLUSB.replace('<< "\\n";', '<< "\\n" << std::flush; *(volatile int *)0 = 1;')
    exit3 = APLUSB.replace('<< "\\n";', '<< "\\n"; return 3;')
    throw = '#include <stdexcept>\nint main() { throw std::runtime_error("no"); }\n'
    for code, why in ((segv, "signal"), (exit3, "exit code 3"), (throw, "signal")):
        grade = g.grade({"output_text": fenced(code)}, CASES)
        assert grade.status == "ok" and grade.score == 0, (code, grade)
        assert why in grade.details["cases"][0]["error"], (code, grade)


def test_compile_time_limit_is_a_zero_on_an_idle_machine():
    """A constexpr loop that keeps g++ busy past its compile limit: it used its CPU, so the program is at
    fault (0), unless the machine was busy (then the grade is status timeout, not 0). The compile gets at
    most half the sample's `timeout` (here 1.5 of 3 s)."""
    bomb = (
        "constexpr long f() { long s = 0; for (long i = 0; i < 100000000000L; i++) s += i % 7; return s; }\n"
        "int main() { constexpr long x = f(); return x == 1; }\n"
    )
    flags = ["-std=gnu++17", "-fconstexpr-ops-limit=1099511627776", "-fconstexpr-loop-limit=2147483647"]
    g = grader("local", timeout=3.0, compiler={"flags": flags})
    grade = g.grade({"output_text": fenced(bomb)}, CASES)
    assert grade.status in ("ok", "timeout") and not grade.passed, grade
    if grade.status == "ok":
        assert grade.score == 0 and "compile time limit exceeded (1.5 s)" in grade.details["compile_error"], (
            grade
        )
    assert processes_of(sandbox_uid(backend_or_skip("local"))) == []


def _timeout_report(cpu: float, wait: float) -> ExecResult:
    event = f'{{"e": "timeout", "cpu_s": {cpu}, "wait_s": {wait}, "wall_s": 2.0}}\n'.encode()
    return ExecResult("exited", exit_code=0, result=event)


def test_compile_timeout_rule():
    """The decision on a compile that ran out of time, on the reports the compile run makes (the run
    itself is replaced here: a busy machine cannot be made on demand)."""
    options = CompilerOptions(timeout=2.0)
    calls: list[int] = []

    def execute(reports):
        def run(program: str, stdin: bytes, limits: Limits):
            calls.append(1)
            assert limits.timeout > options.timeout and stdin.endswith(b"int main() {}")
            return reports[len(calls) - 1], {"sandbox": "test"}

        return run

    busy, idle = _timeout_report(0.2, 1.5), _timeout_report(1.9, 0.05)
    got = compile_cpp(execute([busy, busy]), "int main() {}", options)
    assert got.outcome == "busy" and len(calls) == 2 and got.details["attempts"] == 2
    calls.clear()
    got = compile_cpp(execute([busy, idle]), "int main() {}", options)
    assert got.outcome == "error" and "compile time limit" in got.message and len(calls) == 2
    calls.clear()
    got = compile_cpp(execute([idle]), "int main() {}", options)
    assert got.outcome == "error" and len(calls) == 1
    calls.clear()
    nowait = _timeout_report(0.2, 0).result.replace(b'"wait_s": 0', b'"wait_s": null')
    got = compile_cpp(execute([ExecResult("exited", result=nowait)]), "int main() {}", options)
    assert got.outcome == "error", "without schedstat a compile timeout is scored, never retried"


# ---- containment ------------------------------------------------------------------------------------

READ_SECRETS = """#include <cstdio>
#include <iostream>
int main() {{
    const char *paths[] = {{"{secret}", "/etc/shadow", "/proc/1/environ", "/root/.bashrc"}};
    for (const char *p : paths) {{
        FILE *f = fopen(p, "r");
        if (!f) {{ printf("no %s\\n", p); continue; }}
        char buf[256] = {{0}};
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        printf("READ %s %zu %s\\n", p, n, buf);
        fprintf(stderr, "READ %s %s\\n", p, buf);
    }}
    const char *env = getenv("RFT_CPP_SECRET");
    printf("env %s\\n", env ? env : "none");
}}
"""
CONNECT = """#include <arpa/inet.h>
#include <cstdio>
#include <sys/socket.h>
#include <unistd.h>
int main() {{
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 1;
    const char *hosts[] = {{"127.0.0.1", "1.1.1.1"}};
    int ports[] = {{{port}, 53}};
    for (int i = 0; i < 2; i++) {{
        int s = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{{}};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(ports[i]);
        inet_pton(AF_INET, hosts[i], &addr.sin_addr);
        if (s >= 0 && connect(s, (sockaddr *)&addr, sizeof addr) == 0) {{ puts("connected"); return 0; }}
        if (s >= 0) close(s);
    }}
    printf("%lld\\n", a + b);
}}
"""
FORK_BOMB = "#include <unistd.h>\nint main() { for (;;) fork(); }\n"
DAEMON = """#include <cstdio>
#include <unistd.h>
int main() {
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 1;
    if (fork() == 0) { setsid(); if (fork() == 0) { for (;;) sleep(1); } _exit(0); }
    printf("%lld\\n", a + b);
}
"""
WRITE_OUTSIDE = """#include <cstdio>
int main() {{
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 1;
    const char *paths[] = {{"{outside}", "/usr/rft-x", "/etc/rft-x", "/rft-x"}};
    for (const char *p : paths) {{ FILE *f = fopen(p, "w"); if (f) {{ fputs("x", f); fclose(f); }} }}
    printf("%lld\\n", a + b);
}}
"""
MEMORY = "#include <cstddef>\n#include <vector>\nint main() { std::vector<char> v(std::size_t(8) << 30); return v[12345]; }\n"
INCLUDE_SECRET = '#include "{secret}"\nint main() {{}}\n'


def test_cpp_attacks_are_contained(backend, secret_file, listener, monkeypatch):
    name, box = backend
    monkeypatch.setenv("RFT_CPP_SECRET", SECRET)  # set after the sandbox started: must not reach it anyway
    outside = f"/tmp/rft-cpp-escaped-{secrets.token_hex(6)}"
    g = grader(name)
    attacks = [
        ("read secrets", READ_SECRETS.format(secret=secret_file), False),
        ("network", CONNECT.format(port=listener), True),
        ("fork bomb", FORK_BOMB, False),
        ("daemon", DAEMON, True),
        ("write outside", WRITE_OUTSIDE.format(outside=outside), True),
        ("memory", MEMORY, False),
        ("include a secret", INCLUDE_SECRET.format(secret=secret_file), False),
    ]
    for label, code, may_pass in attacks:
        grade = g.grade({"output_text": fenced(code)}, CASES)
        assert grade.status in ("ok", "timeout"), (label, grade)
        if not may_pass:
            assert not grade.passed, (label, grade)
        text = repr(grade.to_dict())
        assert SECRET not in text, (label, "a secret reached the program's output")
        assert "connected" not in repr(grade.details), label
        assert not Path(outside).exists(), (label, "the program wrote outside its sandbox")
        assert processes_of(sandbox_uid(box)) == [], (label, "processes of the sandbox's uid still run")
    follow = g.grade({"output_text": fenced(APLUSB)}, CASES)  # the grader keeps going
    assert follow.passed, follow


# ---- the spec and extraction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,why",
    [
        ({"type": "code", "language": "cpp", "tests": "x"}, "Python only"),
        ({"type": "code", "language": "rust", "cases": "x"}, "language"),
        ({"type": "code", "language": "cpp", "cases": "x", "compiler": {"timeout": 0}}, "timeout"),
        ({"type": "code", "language": "cpp", "cases": "x", "compiler": {"flag": []}}, "flag"),
    ],
)
def test_bad_specs(spec, why):
    with pytest.raises(GraderSpecError, match=why):
        load_grader(spec)


def test_extract_cpp_code():
    assert extract_code(fenced(APLUSB), language="cpp") == (APLUSB, True)
    assert extract_code(fenced(APLUSB, "C++"), language="cpp") == (APLUSB, True)
    assert extract_code(fenced("print(1)\n", "python"), language="cpp") == (None, True)
    assert extract_code(APLUSB, language="cpp") == (APLUSB, False)
    assert extract_code(fenced(APLUSB), language="python") == (None, True)


def test_no_cpp_code_is_no_answer():
    grade = grader("local").grade({"output_text": fenced("print(3)\n", "python")}, CASES)
    assert grade.status == "no_answer" and "C++" in grade.details["reason"], grade
