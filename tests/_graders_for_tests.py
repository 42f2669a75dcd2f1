"""Grader types for tests/test_executor.py. A module of its own, so that worker processes can import it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any, Literal

from rft.graders.base import Grader, register
from rft.graders.grade import Grade


@register("test_behave")
class Behave(Grader):
    """Does what the sample text says:

    - ``sleep``: sleeps forever; ``spin``: burns CPU forever; ``spin:S``: burns S CPU seconds, then passes;
    - ``exit``: ends its process with ``os._exit(3)``;
    - ``spawn:PATH``: starts ``sleep 1000``, writes its pid to PATH, then sleeps forever;
    - ``pid``: passes with its process id as the extracted answer;
    - anything else: passes with score ``len(text)``.
    """

    type: Literal["test_behave"] = "test_behave"
    pin_cpu: int | None = None  # run on this CPU only

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        if self.pin_cpu is not None:
            os.sched_setaffinity(0, {self.pin_cpu})
        text = ctx["sample"]["output_text"]
        if text == "sleep":
            while True:
                time.sleep(60)
        if text.startswith("spin"):
            budget = float(text[5:]) if text.startswith("spin:") else float("inf")
            start = time.process_time()
            while time.process_time() - start < budget:
                pass
            return Grade(1.0, "ok", True, text)
        if text == "exit":
            os._exit(3)
        if text.startswith("spawn:"):
            child = subprocess.Popen(["sleep", "1000"])
            Path(text[6:]).write_text(str(child.pid))
            while True:
                time.sleep(60)
        if text == "pid":
            return Grade(1.0, "ok", True, os.getpid())
        return Grade(float(len(text)), "ok", True, text)
