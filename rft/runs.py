"""The run folder: resolved config, metrics, rollouts, atomic checkpoints, resume, export.

    out/
      config.yaml          the resolved config (rewritten on resume, when only allowed keys changed)
      metrics.jsonl        one {"step": ..., "<namespace>/<name>": ...} line per `log`
      rollouts.jsonl       sample rollouts, one {"step": ..., ...} line per row
      checkpoints/
        step-000100/       model/ (full model, or only the adapter for a peft model, plus tokenizer), state.pt
        latest             the newest checkpoint's folder name
      tb/                  TensorBoard events, when the `tensorboard` package is installed

A checkpoint is written to ``checkpoints/.tmp-step-*`` and renamed into place, so a ``step-*`` folder is
always complete; a killed run leaves at most a ``.tmp-*`` folder, removed when the run is opened again.
Weights & Biases logging starts when `wandb` is installed and ``WANDB_PROJECT`` is set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from rft.config import config_diff, save_config, to_dict
from rft.models import ModelError, complete_checkpoints, latest_checkpoint, model_folder, resolve_model_path

__all__ = ["Run", "RunError", "rng_state", "set_rng_state", "export_model", "latest_checkpoint", "trained"]

DEFAULT_ALLOW_CHANGES = ("steps", "save_every", "eval_every", "log_every")
_STEP_DIR = re.compile(r"step-(\d+)")


class RunError(RuntimeError):
    """The run folder cannot be used as asked; the message says what to pass instead."""


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under `root` (and `root`) to disk."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _truncate_jsonl(path: Path, last_step: int | None) -> None:
    """Keep the lines with step <= last_step (all gone when None); a torn last line is dropped."""
    if not path.exists():
        return
    kept = []
    if last_step is not None:
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= last_step:
                kept.append(line + "\n")
    _write_atomic(path, "".join(kept))


def _scalar(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return float(value)


class Run:
    """An open run folder. Make one with `Run.open`."""

    def __init__(self, dir: Path, config: Any, resume_step: int | None) -> None:
        self.dir = dir
        self.config = config
        self.resume_step = resume_step  # the step of the checkpoint resumed from; None: a fresh start
        self._metrics = open(dir / "metrics.jsonl", "a")  # noqa: SIM115 (open until `close`)
        self._rollouts = open(dir / "rollouts.jsonl", "a")  # noqa: SIM115
        self._tb = None
        if importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_step is None else resume_step + 1  # hide events of re-run steps
            self._tb = SummaryWriter(str(dir / "tb"), purge_step=purge)
        self._wandb = None
        if os.environ.get("WANDB_PROJECT") and importlib.util.find_spec("wandb") is not None:
            import wandb

            id_file = dir / "wandb_id"
            run_id = id_file.read_text().strip() if id_file.exists() else wandb.util.generate_id()
            id_file.write_text(run_id)
            self._wandb = wandb.init(
                project=os.environ["WANDB_PROJECT"], id=run_id, resume="allow", name=dir.name,
                dir=str(dir), config=to_dict(config),
            )  # fmt: skip

    @classmethod
    def open(
        cls,
        out: str | Path,
        config: Any,
        *,
        resume: bool = False,
        allow_changes: Sequence[str] = DEFAULT_ALLOW_CHANGES,
    ) -> Run:
        """Start a run in `out`, or continue it (`resume`) when only keys in `allow_changes` (dotted,
        a key covers its sub-keys) differ from its saved config. A folder whose run never trained (no
        checkpoint, no model, no metrics after step 0: a start that failed) is started again from scratch,
        with or without `resume`, whatever its config was."""
        out = Path(out)
        cfg_path = out / "config.yaml"
        ckdir = out / "checkpoints"
        if cfg_path.exists() and trained(out):
            if not resume:
                raise RunError(
                    f"{out} holds a run that trained already; to continue it pass --resume (grpo, ppo), to "
                    f"start over delete the folder (rm -r {out}), or choose another out folder"
                )
            saved = yaml.safe_load(cfg_path.read_text()) or {}
            allowed = tuple(allow_changes)
            changed = [
                k
                for k in config_diff(saved, to_dict(config))
                if not any(k == a or k.startswith(f"{a}.") for a in allowed)
            ]
            if changed:
                raise RunError(
                    f"cannot resume {out}: the config differs from its config.yaml in {', '.join(changed)}; "
                    f"only {', '.join(allowed) or 'nothing'} may change on resume. Put the old values back, "
                    f"delete the folder to start over (rm -r {out}), or choose another out folder"
                )
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, cfg_path)
        if ckdir.is_dir():
            for tmp in ckdir.glob(".tmp-*"):  # left by a run killed while saving
                shutil.rmtree(tmp, ignore_errors=True)
        for tmp in out.glob(".tmp-model-*"):  # a final model killed half-written
            shutil.rmtree(tmp, ignore_errors=True)
        ckpt = latest_checkpoint(ckdir) if resume else None
        step = int(_STEP_DIR.fullmatch(ckpt.name).group(1)) if ckpt else None  # type: ignore[union-attr]
        for name in ("metrics.jsonl", "rollouts.jsonl"):
            _truncate_jsonl(out / name, step)  # steps after the checkpoint will be run (and logged) again
        if step is None:
            shutil.rmtree(out / "tb", ignore_errors=True)  # a fresh start: no stale TensorBoard events
        return cls(out, config, step)

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Append one metrics line (and send the scalars to TensorBoard / W&B when enabled)."""
        row = {k: _scalar(v) for k, v in metrics.items()}
        self._metrics.write(json.dumps({"step": step, **row}) + "\n")
        self._metrics.flush()
        numbers = {k: v for k, v in row.items() if isinstance(v, int | float)}
        if self._tb is not None:
            for k, v in numbers.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(numbers, step=step)

    def log_rollouts(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append sample rollouts (prompt, completion, reward, ...), one JSON line each."""
        for row in rows:
            self._rollouts.write(json.dumps({"step": step, **row}, ensure_ascii=False, default=str) + "\n")
        self._rollouts.flush()

    def save_checkpoint(
        self, step: int, *, model: Any, tokenizer: Any, state: dict[str, Any], keep: int = 2
    ) -> Path:
        """Write ``checkpoints/step-{step:06d}/`` atomically (model/ via `save_pretrained`: only the
        adapter for a peft model; state.pt via `torch.save`), point ``latest`` at it, keep the newest `keep`."""
        if keep < 1:
            raise ValueError(f"keep must be >= 1 (the newest checkpoint is never removed), got {keep}")
        ckdir = self.dir / "checkpoints"
        ckdir.mkdir(exist_ok=True)
        name = f"step-{step:06d}"
        final, tmp = ckdir / name, ckdir / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        model.save_pretrained(tmp / "model")
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp / "model")
        torch.save(state, tmp / "state.pt")
        _fsync_tree(tmp)
        if final.exists():  # the same step saved again (after a resume): swap the old one out
            old = ckdir / f".tmp-old-{name}-{os.getpid()}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old)
        else:
            os.rename(tmp, final)
        _fsync_dir(ckdir)
        _write_atomic(ckdir / "latest", name + "\n")
        shutil.rmtree(self.dir / "model", ignore_errors=True)  # a resumed run's old final model: stale now
        for _, path in complete_checkpoints(ckdir)[:-keep]:
            if path != final:
                shutil.rmtree(path)
        return final

    def save_final_model(self, ckpt: str | Path, *, base_model: str | None = None) -> Path:
        """Write ``model/``: the checkpoint's model as a standalone folder that loads like an SFT stage's
        (a LoRA adapter merged into `base_model`), replacing an older one atomically."""
        final, tmp = self.dir / "model", self.dir / f".tmp-model-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        export_model(ckpt, tmp, base_model=base_model, link=True)
        _fsync_tree(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        _fsync_dir(self.dir)
        return final

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint ``latest`` names, else the highest complete one; None when there is none."""
        return latest_checkpoint(self.dir / "checkpoints")

    @staticmethod
    def load_state(ckpt: str | Path) -> dict[str, Any]:
        """The `state` saved with a checkpoint (tensors on CPU; `optimizer.load_state_dict` moves them)."""
        return torch.load(Path(ckpt) / "state.pt", map_location="cpu", weights_only=False)  # our own file

    def close(self) -> None:
        for f in (self._metrics, self._rollouts):
            f.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def trained(out: str | Path) -> bool:
    """Whether the run folder `out` holds anything a training run made: a complete checkpoint, a final
    ``model/``, or a metrics line after step 0 (step 0 is the evaluation before training)."""
    out = Path(out)
    if latest_checkpoint(out / "checkpoints") is not None or (out / "model").exists():
        return True
    metrics = out / "metrics.jsonl"
    if not metrics.is_file():
        return False
    for line in metrics.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] > 0:
            return True
    return False


def rng_state() -> dict[str, Any]:
    """The state of Python's `random`, numpy's global RNG, torch's CPU RNG (and CUDA's, when present)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def export_model(
    ckpt_or_run: str | Path, out: str | Path, *, base_model: str | None = None, link: bool = False
) -> Path:
    """Write a standalone model folder (safetensors + tokenizer) that `AutoModelForCausalLM` and vLLM
    load, from a run folder (its final model, else its latest checkpoint), a checkpoint or a model folder.
    A peft adapter is merged into its base (`base_model`, else the one the adapter names). `link`: a full
    model's files are hard links to the checkpoint's (no copy; neither is ever rewritten in place)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, out = model_folder(ckpt_or_run), Path(out)
    if out.exists() and any(out.iterdir()):
        raise RunError(f"{out} exists and is not empty; choose another export folder or delete it")
    if not (src / "adapter_config.json").is_file():  # a full model: copy it as saved
        if out.exists():
            out.rmdir()
        shutil.copytree(src, out, copy_function=os.link if link else shutil.copy2)
        return out
    from peft import PeftConfig, PeftModel

    base = base_model or PeftConfig.from_pretrained(str(src)).base_model_name_or_path
    if not base:
        raise RunError(f"the adapter in {src} does not name its base model; pass base_model= (--base-model)")
    try:
        model = AutoModelForCausalLM.from_pretrained(resolve_model_path(base))
    except (OSError, ModelError) as e:
        raise RunError(
            f"cannot load {base!r}, the base model of the adapter in {src} ({e}); "
            "pass base_model= (--base-model) with a local path or hub id of the base model"
        ) from e
    merged = PeftModel.from_pretrained(model, str(src)).merge_and_unload()
    merged.save_pretrained(out)  # transformers >= 5 always writes safetensors
    tok_src = src if (src / "tokenizer_config.json").is_file() else resolve_model_path(base)
    AutoTokenizer.from_pretrained(tok_src).save_pretrained(out)
    return out
