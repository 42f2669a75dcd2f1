"""Data-parallel RL training over several processes (``accelerate launch``, ``torchrun``).

Each rank rolls out its contiguous share of a step's prompt groups with its own engine, grades its own
samples and runs the update on them. Minibatches are drawn from the whole batch's order (the same on every
rank), losses are normalised by the whole minibatch's count (summed over ranks) and gradients are summed
over ranks, so an optimizer step equals one process's step on the whole batch.

The model and optimizer go through `accelerate.Accelerator.prepare`, so DDP, FSDP and DeepSpeed ZeRO come
from the accelerate config file. All three need every rank to run the same forwards and backwards per
optimizer step (DDP broadcasts buffers in every forward and reduces gradients in backward hooks, ZeRO-2
reduce-scatters on every backward, FSDP gathers weights in every forward); rows whose advantage is 0 are not
run, so ranks pad their micro-batches to the longest rank's count with zero-weighted passes (`minibatch`).
Gradients are reduced only on a minibatch's last micro-batch (`micro_step`). The backends average gradients
over ranks; `backward` multiplies the loss by the world size so that they add up instead. No-grad passes
(old and reference log-probabilities) and sampling use a plain module (`prepare`'s `policy`): no collectives.

With one process (a plain ``rft train``) nothing here touches accelerate or torch.distributed: `Dist()`
passes everything through and the loops run exactly as they do without this module.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

import torch

from rft.models import trainable_parameters

__all__ = ["Dist"]

T = TypeVar("T")


class Dist:
    """This process's place among the ranks, and the collectives the RL loops need. `Dist()` is one process."""

    def __init__(self, accelerator: Any = None) -> None:
        self.acc = accelerator
        self.rank = 0 if accelerator is None else accelerator.process_index
        self.world = 1 if accelerator is None else accelerator.num_processes
        self.is_main = self.rank == 0
        kind = "single" if accelerator is None else accelerator.distributed_type
        self.kind: str = getattr(kind, "value", kind)  # MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED
        self.device: torch.device | None = None if accelerator is None else accelerator.device
        self._boundary = True  # DeepSpeed: whether the current micro-batch ends its minibatch

    @classmethod
    def from_env(cls) -> Dist:
        """Several processes when launched with ``WORLD_SIZE`` > 1 (accelerate launch, torchrun), else one."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        from datetime import timedelta

        from accelerate import Accelerator
        from accelerate.utils import InitProcessGroupKwargs

        # rank 0 evaluates and checkpoints while the others wait in their next collective (NCCL's default
        # limit is 10 minutes): allow a long held-out evaluation
        wait = InitProcessGroupKwargs(timeout=timedelta(hours=3))
        dist = cls(Accelerator(kwargs_handlers=[wait]))
        if dist.world != int(os.environ["WORLD_SIZE"]):  # e.g. an FSDP or DeepSpeed config with --cpu
            raise ValueError(
                f"launched as {os.environ['WORLD_SIZE']} processes but accelerate set up {dist.world} "
                f"({dist.kind}); on CPU use the DDP config (accelerate launch --cpu), FSDP and DeepSpeed need GPUs"
            )
        # DeepSpeed's bf16/fp16 (its config) casts the weights themselves: no autocast there
        if dist.kind != "DEEPSPEED" and dist.acc.mixed_precision != "no":
            raise ValueError(
                f"accelerate's mixed_precision is {dist.acc.mixed_precision!r}: set it to 'no' in the accelerate "
                "config; the recipe's `dtype` sets the weights' precision (auto: bf16 on a GPU that has it), "
                "and autocast would make the trained and the sampled log-probabilities disagree"
            )
        return dist

    @property
    def sharded(self) -> bool:
        """Weights or optimizer state split across ranks (FSDP, DeepSpeed ZeRO): only rank-local pieces exist."""
        return self.kind in ("FSDP", "DEEPSPEED")

    def check(self, cfg: Any, resume: bool, *, sharded: bool = True) -> None:
        """What several processes do not support (yet), said before any model is loaded. `cfg`: an
        `RLConfig`; `sharded`: whether the loop supports FSDP/DeepSpeed."""
        if self.world == 1:
            return
        self.share(cfg.prompts_per_step, "prompts_per_step")
        if cfg.engine != "hf" or getattr(cfg, "async_rollout", False):
            raise ValueError(
                "with several processes use engine: hf and async_rollout: false (each process samples with "
                "its own copy of the model)"
            )
        if cfg.device != "auto":
            raise ValueError(
                f"device is {cfg.device!r}: leave it auto with several processes (accelerate picks)"
            )
        if self.sharded and not sharded:
            raise ValueError(
                f"this loop runs on several processes with DDP only, not {self.kind}; use ddp.yaml"
            )
        if resume and self.sharded:
            raise ValueError(
                f"--resume of a {self.kind} run is not supported (its optimizer state is split across "
                "processes); start a new run from a checkpoint's model folder, or resume with DDP"
            )

    def share(self, n: int, what: str) -> slice:
        """This rank's contiguous share of `n` items (prompt groups)."""
        if n % self.world:
            raise ValueError(
                f"{what} ({n}) must be divisible by the number of processes ({self.world}): each process "
                f"trains on {what} / processes of them"
            )
        k = n // self.world
        return slice(self.rank * k, (self.rank + 1) * k)

    # ---- model and optimizer -------------------------------------------------------------------------

    def prepare(
        self,
        model: torch.nn.Module,
        optimizers: list[torch.optim.Optimizer],
        micro_batch: int,
        max_grad_norm: float,
    ) -> tuple[torch.nn.Module, list[torch.optim.Optimizer], torch.nn.Module]:
        """(the module to train through, the optimizers, `policy`): `policy` is a plain module holding the
        current full weights, for generation, no-grad passes and checkpoints. One process: all as given.
        DDP, DeepSpeed ZeRO-2: the wrapped module itself. FSDP: a full copy, refreshed by `sync_policy`."""
        if self.acc is None:
            return model, optimizers, model
        policy = copy.deepcopy(model).requires_grad_(False) if self.kind == "FSDP" else None
        if self.kind == "DEEPSPEED":
            ds = self.acc.state.deepspeed_plugin.deepspeed_config
            if ds.get("gradient_accumulation_steps", 1) not in (1, "auto"):
                raise ValueError(
                    "set gradient_accumulation_steps: 1 in the DeepSpeed config: rft accumulates micro-batches "
                    "itself (`micro_batch` rows each, up to a minibatch)"
                )
            ds["train_micro_batch_size_per_gpu"] = micro_batch  # required by DeepSpeed, unused by rft
            ds["gradient_clipping"] = max_grad_norm  # DeepSpeed clips inside its step; 0 = none
        wrapped, *optimizers = self.acc.prepare(model, *optimizers)
        return wrapped, optimizers, policy if policy is not None else self.acc.unwrap_model(wrapped)

    def sync_policy(self, model: torch.nn.Module, policy: torch.nn.Module) -> None:
        """After an optimizer step: FSDP gathers the full weights into `policy` (on every rank); else no-op."""
        if self.kind != "FSDP":
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
        policy.load_state_dict(full)

    @contextmanager
    def micro_step(self, model: torch.nn.Module, last: bool) -> Iterator[None]:
        """Around one micro-batch's forward and backward: gradients are reduced across ranks only on the
        minibatch's `last` micro-batch (DDP/FSDP ``no_sync`` before it; DeepSpeed: its accumulation boundary,
        where it also clips and steps, inside `backward`)."""
        self._boundary = last
        if self.acc is None or self.kind == "DEEPSPEED":
            yield
            return
        with nullcontext() if last else self.acc.no_sync(model):
            yield

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of a loss normalised by the whole batch: ranks' gradients add up to the full gradient
        (the backends average over ranks, hence the factor `world`)."""
        if self.acc is None:
            loss.backward()
        elif self.kind == "DEEPSPEED":  # the engine itself: rft, not a fixed count, marks the boundary
            engine = self.acc.deepspeed_engine_wrapped.engine
            engine.set_gradient_accumulation_boundary(self._boundary)
            engine.backward(loss * self.world)
            if self._boundary:
                engine.step()  # clip to max_grad_norm, optimizer step, zero the gradients
        else:
            self.acc.backward(loss * self.world)

    def clip_grad_norm(self, model: torch.nn.Module, max_norm: float) -> float:
        """Clip the (reduced) gradients to `max_norm` (0: no clipping); returns their norm before clipping.
        DeepSpeed clips inside its step (to the same `max_norm`, see `prepare`) and reports the norm."""
        bound = max_norm or math.inf
        if self.acc is None:
            return float(torch.nn.utils.clip_grad_norm_(trainable_parameters(model), bound))
        params = list(model.parameters()) if self.kind == "FSDP" else trainable_parameters(model)
        norm = self.acc.clip_grad_norm_(params, bound)
        return math.nan if norm is None else float(norm)

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
        """The optimizer state to checkpoint: every rank holds the same one, except under FSDP/ZeRO (None)."""
        return None if self.sharded else optimizer.state_dict()

    # ---- collectives ---------------------------------------------------------------------------------

    def broadcast(self, obj: T) -> T:
        """Rank 0's `obj` on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's `obj`, in rank order."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def gather(self, items: Sequence[T]) -> list[T] | None:
        """Every rank's `items` concatenated in rank order, on rank 0; None on the others."""
        if self.world == 1:
            return list(items)
        out: list[Any] = [None] * self.world if self.is_main else None  # type: ignore[assignment]
        torch.distributed.gather_object(list(items), out, dst=0)
        return [x for part in out for x in part] if self.is_main else None

    def add_up(self, stats: dict[str, float]) -> dict[str, float]:
        """Each key summed over ranks (a key some rank lacks counts 0 there)."""
        if self.world == 1:
            return stats
        total: dict[str, float] = {}
        for part in self.all_gather(stats):
            for k, v in part.items():
                total[k] = total.get(k, 0.0) + v
        return total

    def mean(self, stats: dict[str, float]) -> dict[str, float]:
        """Each key averaged over ranks (every rank has the same keys)."""
        if self.world == 1:
            return stats
        return {k: v / self.world for k, v in self.add_up(stats).items()}

    def cat_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Every rank's rows of `x` (B, T, ...), in rank order, right-padded with zeros to the widest rank's T:
        the whole batch as one process would hold it."""
        if self.world == 1:
            return x
        parts = self.all_gather(x.detach().cpu())
        if x.ndim > 1:
            width = max(p.shape[1] for p in parts)
            parts = [
                torch.nn.functional.pad(p, (0, 0) * (p.ndim - 2) + (0, width - p.shape[1])) for p in parts
            ]
        return torch.cat(parts).to(x.device)

    def minibatch(self, rows: int, items: float, micro: list[T]) -> tuple[int, float, list[T | None]]:
        """A minibatch's rows and loss normaliser summed over ranks, and this rank's micro-batches padded
        with None to the longest rank's count (a None is a zero-weighted pass: see the module doc)."""
        if self.world == 1:
            return rows, items, list(micro)
        mine = torch.tensor([rows, items, len(micro)], dtype=torch.float64, device=self.device)
        every = [torch.zeros_like(mine) for _ in range(self.world)]
        torch.distributed.all_gather(every, mine)
        table = torch.stack(every).cpu()  # (world, 3)
        n = int(table[:, 2].max())
        return int(table[:, 0].sum()), float(table[:, 1].sum()), [*micro, *[None] * (n - len(micro))]
