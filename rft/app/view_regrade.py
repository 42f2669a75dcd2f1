"""The rollouts table's "passed the reward, failed the held-out grader" filter: rewarded rollouts graded again
with the held-out suite's grader, the check `rft diagnose` makes for reward hacking, done for the rows a page
scans. Rows that already carry a `heldout_grade` keep it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["HeldoutRegrader"]


class HeldoutRegrader:
    """Grades a run's rewarded rollouts with its held-out suite's grader (`eval.suite`, else `suite`, from the
    run's config.yaml). `note` says why no row can fail it when that is so (no config, the same grader)."""

    def __init__(self, run: Path) -> None:
        from rft.envs import SuiteError, get_suite

        self.grader: Any = None
        self.items: dict[str, dict[str, Any]] = {}
        config = run / "config.yaml"
        if not config.is_file():
            self.note = f"{run.name} has no config.yaml: only rows carrying a heldout_grade are checked"
            return
        cfg = yaml.safe_load(config.read_text()) or {}
        train_id = cfg.get("suite")
        heldout_id = (cfg.get("eval") or {}).get("suite") or train_id
        if not train_id:
            self.note = f"{config} names no suite: only rows carrying a heldout_grade are checked"
            return
        try:
            train, heldout = get_suite(str(train_id)), get_suite(str(heldout_id))
        except SuiteError as e:
            self.note = f"cannot load the run's suites ({e}): only rows carrying a heldout_grade are checked"
            return
        if heldout.grader == train.grader:
            self.note = f"the held-out grader is the training grader ({heldout.id}): no rewarded row fails it"
            return
        self.note = f"rewarded rows graded again with {heldout.id}'s grader"
        self.grader = heldout.load_grader()
        self.items = {str(it["id"]): it for it in heldout.items()}

    def __call__(self, row: dict[str, Any]) -> None:
        """Add `heldout_grade` to a rewarded row that has none (in place)."""
        reward = row.get("reward")
        if self.grader is None or "heldout_grade" in row or not isinstance(reward, int | float) or reward < 1:
            return
        completion = row.get("completion")
        if isinstance(completion, list):
            text = "".join(str(m.get("content", "")) for m in completion if m.get("role") == "assistant")
        else:
            text = str(completion or "")
        item = self.items.get(str(row.get("id")), {"id": row.get("id"), "reference": row.get("reference")})
        row["heldout_grade"] = {**self.grader.grade({"output_text": text}, item).to_dict(), "regraded": True}
