"""The run around an RL loop: what GRPO and PPO share, so that their files hold only what differs.

`Harness` sets up the processes (`Dist`), resolves the suite and its train problems, opens the run folder,
restores a checkpoint (optimizers, schedulers, RNG state, step), starts the engine (and, for async
rollouts, a sampler up to `max_staleness` updates behind in the background), the training envs, the
held-out evaluation and the grader processes; per step it rolls out (sync or async), pushes new weights,
gathers every rank's samples, evaluates and logs when due, and checkpoints; on exit it closes everything.
A loop reads::

    with Harness(cfg, resume) as h:
        model, optimizer, ... = ...            # the loop's models
        state = h.restore([optimizer], [scheduler])
        h.start_engine(policy, tokenizer, compute, episodes_per_prompt)
        for step in h.steps():
            trajs = h.rollout(step, rollout_fn)
            ... advantages, update ...
            h.push_weights()
            everyone = h.gather(trajs, group_size)
            h.log(step, metrics, everyone, progress)
            h.save(step, ...)

Every step's prompts follow from (seed, step) alone (`prompt_indices`; a mix of suites: `rft.envs.mix.Interleave`),
so a resumed run repeats the steps. With a mix, each prompt's episodes run in an env of its own suite (its
grader), and the held-out evaluation covers every suite (`eval/<suite>/accuracy`).

Async rollouts with ``max_staleness`` k: step s is sampled with the weights after update max(0, s - k) (its
"weight version"): at step s, before it trains, the rollouts of steps s+1..s+k are queued on one background
thread, the newest with a CPU copy of the current weights (`weight_snapshot`), which the sampler loads
before sampling it. Which weights sample which step never depends on timing, and a checkpoint holds the
queued rollouts (it waits for them), so a resumed run repeats the steps exactly. The vllm engines sample
in the background with the engine itself (no second copy): every call to it, the held-out evaluation's
too, runs on that thread, one at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import torch

from rft.chat import use_chat_template
from rft.engines import Engine, HFEngine, make_engine
from rft.engines.process import ProcessEngine
from rft.envs import SuiteEnv
from rft.envs.mix import Interleave, load_mix, prompt_indices, read_mix
from rft.eval.heldout import HeldOut
from rft.graders.executor import GraderPool, GradingPool
from rft.models import resolve_model_path
from rft.rl.config import RLConfig
from rft.rl.distributed import Dist
from rft.rl.metrics import rollout_row
from rft.rollout import Trajectory
from rft.runs import Run, rng_state, set_rng_state

__all__ = [
    "Harness",
    "train_items",
    "prompt_indices",
    "engine_options",
    "chunks",
    "micro_batches",
    "log_step",
    "weight_snapshot",
]

T = TypeVar("T")


def train_items(suite: Any, offset: int) -> list[dict[str, Any]]:
    """The train problems an RL run draws from: the train split from `offset` on."""
    if suite.heldout_only:
        raise ValueError(
            f"{suite.id} is a held-out benchmark (split: 1): it has no train problems. Train on another "
            f"suite and evaluate on this one (rft eval --suite {suite.id})"
        )
    items = suite.items("train")
    if offset >= len(items):
        raise ValueError(
            f"offset {offset} leaves no train problems: {suite.id} has {len(items)}; lower offset "
            "(it skips the problems an SFT stage's limit took)"
        )
    return items[offset:]


def engine_options(cfg: RLConfig, compute: torch.dtype | None) -> dict[str, Any]:
    """The recipe's `engine_options`, plus, when the policy trains in bf16 mixed precision (`compute`), what
    makes the sampler compute in bf16 too: autocast for ``hf``, a bf16 engine for ``vllm`` (unless the
    recipe sets its `dtype`; it would follow the float32 weights)."""
    options = dict(cfg.engine_options)
    if compute is not None and cfg.engine == "hf":
        options["autocast"] = compute
    elif compute is not None and cfg.engine == "vllm":
        options.setdefault("dtype", str(compute).removeprefix("torch."))
    return options


def chunks(xs: list[int], size: int) -> list[list[int]]:
    """`xs` in consecutive pieces of `size` (the last one shorter)."""
    return [xs[i : i + size] for i in range(0, len(xs), size)]


def weight_snapshot(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` on the CPU with detached copies of its parameters and buffers (tied ones stay
    tied), made without a second copy on the model's own device: what a queued async rollout samples with."""
    memo: dict[int, Any] = {}
    with torch.no_grad():
        for t in (*model.parameters(), *model.buffers()):
            copied = t.detach().to("cpu", copy=True)
            is_param = isinstance(t, torch.nn.Parameter)
            memo[id(t)] = torch.nn.Parameter(copied, requires_grad=False) if is_param else copied
    return copy.deepcopy(model, memo)


def micro_batches(rows: list[int], lengths: Sequence[int], size: int, tokens: int = 0) -> list[list[int]]:
    """`rows` (indices into `lengths`, the tokens of each row) cut into micro-batches, longest rows first, so
    rows of similar length share one: a micro-batch is as wide as its longest row, and short answers stop
    paying for long ones. `tokens` 0: `size` rows each; > 0: as many rows as fit rows x width <= `tokens`
    (at least one). The loss is normalised by whole-minibatch counts, so the order changes the gradient
    only by float rounding."""
    order = sorted(rows, key=lambda i: -lengths[i])  # stable: rows of one length keep their order
    if tokens <= 0:
        return chunks(order, size)
    out: list[list[int]] = []
    for i in order:
        if out and (len(out[-1]) + 1) * lengths[out[-1][0]] <= tokens:  # out[-1][0]: its widest row
            out[-1].append(i)
        else:
            out.append([i])
    return out


def log_step(
    run: Any, done: int, steps: int, log_every: int, metrics: dict[str, float], trajs: list[Trajectory]
) -> None:
    """Write a step's metrics and rollouts every `log_every` steps and at the last step."""
    if done % log_every == 0 or done == steps:
        run.log(done, metrics)
        run.log_rollouts(done, [rollout_row(t) for t in trajs])


class Harness:
    """One RL run's setup, per-step plumbing and teardown (see the module doc); use it in a ``with``.

    On entry: `dist`, `suites` (the mix's, in order; one for a plain run), `suite` (the first), `suite_ids`,
    `items` (each suite's train problems), `max_turns` (the most of any suite's episodes), `run` (rank 0;
    None on the others), `ckpt` (the checkpoint to resume from, or None), `device` (the device name models
    load on). `restore` sets `start`; `start_engine` sets `engine`, `held_out`, `executor`, and the envs
    that `reset_envs` hands out. `last_eval` holds the latest evaluation."""

    def __init__(self, cfg: RLConfig, resume: bool, *, sharded: bool = True) -> None:
        self.cfg = cfg
        self.dist = Dist.from_env()  # one process unless launched with several (accelerate launch, torchrun)
        self.dist.check(cfg, resume, sharded=sharded)
        torch.set_num_threads(cfg.torch_threads)
        torch.manual_seed(cfg.seed)  # LoRA adapters are initialised from torch's global generator
        mix = read_mix(cfg.suite)
        self.suites = load_mix(mix)  # a bad mix or suite fails here, not after loading the model
        self.suite, self.suite_ids, self._names = self.suites[0], [s.id for s in self.suites], mix.suites
        self.items = [train_items(s, cfg.offset) for s in self.suites]
        self.max_turns = max(s.episode.max_turns for s in self.suites)
        self.interleave = Interleave([len(i) for i in self.items], mix.weights, cfg.seed)
        resolve_model_path(cfg.model)  # a wrong model fails here, before the run folder is made
        self.run = Run.open(cfg.out, cfg, resume=resume) if self.dist.is_main else None
        self.ckpt = self.dist.broadcast(
            self.run.latest_checkpoint() if self.run is not None and resume else None
        )
        self.device = cfg.device if self.dist.device is None else str(self.dist.device)
        self.start = 0
        self.last_eval: dict[str, float] = {}
        self._envs: list[list[SuiteEnv]] = []  # per suite: this rank's envs of a step (start_engine)
        self.engine: Engine | None = None
        self.sampler: Engine | None = None  # async rollouts: the engine that samples in the background
        self.executor: GradingPool | None = None
        self._background: ThreadPoolExecutor | None = None
        self._staleness = 0  # async: max_staleness; 0: sync
        self._shared = False  # async: the sampler is the engine itself (vllm): only the background calls it
        self._queue: dict[int, tuple[int, Future[Any]]] = {}  # step -> (weight version, its rollout)
        self._version: int | None = None  # the weight version of the step rolled out last
        self._loaded: torch.nn.Module | None = None  # the snapshot the sampler holds (background thread)
        self._resumed: list[dict[str, Any]] = []

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- setup -------------------------------------------------------------------------------------------

    def restore(
        self, optimizers: Sequence[torch.optim.Optimizer], schedulers: Sequence[Any]
    ) -> dict[str, Any] | None:
        """Resuming: load the checkpoint's optimizers, schedulers and RNG state, and start after its step;
        returns its state (the loop restores what else it saved), or None on a fresh start."""
        if self.ckpt is None:
            return None
        state = Run.load_state(self.ckpt)
        # GRPO checkpoints written before the harness hold one "optimizer" and one "scheduler"
        saved_opts = state["optimizers"] if "optimizers" in state else [state["optimizer"]]
        saved_schs = state["schedulers"] if "schedulers" in state else [state["scheduler"]]
        for o, s in zip(optimizers, saved_opts, strict=True):
            o.load_state_dict(s)
        for sch, s in zip(schedulers, saved_schs, strict=True):
            sch.load_state_dict(s)
        set_rng_state(state["rng"])
        self.start = state["step"]
        self._resumed = state.get("pending_rollouts") or []
        one_step = state.get("next_rollout")  # a checkpoint from before max_staleness: one update behind
        if "pending_rollouts" not in state and one_step is not None:
            self._resumed = [{"step": self.start, "version": max(0, self.start - 1), "rollout": one_step}]
        return state

    def start_engine(
        self,
        policy: torch.nn.Module,
        tokenizer: Any,
        compute: torch.dtype | None,
        episodes_per_prompt: int,
        *,
        async_rollout: bool = False,
        max_staleness: int = 1,
    ) -> None:
        """The engine sampling `policy` (bf16 mixed precision, `compute`: it computes in bf16 too), this rank's
        train envs (its share of prompts_per_step, `episodes_per_prompt` each), the held-out evaluation and
        the grader processes. `async_rollout`: rollouts are sampled on a background thread with weights up
        to `max_staleness` updates old (see the module doc), by a second engine for ``hf`` (a child process;
        a LoRA model: a copy in this one), by the engine itself for ``vllm`` and ``vllm_server``."""
        cfg = self.cfg
        self.policy, self.tokenizer = policy, use_chat_template(tokenizer, cfg.chat)
        options = engine_options(cfg, compute)
        self.engine = self.sampler = make_engine(cfg.engine, policy, tokenizer, **options)
        if async_rollout:
            if cfg.engine != "hf":
                self._shared = True
            elif cfg.lora.r > 0:
                self.sampler = HFEngine(copy.deepcopy(policy), tokenizer, **options)
            else:
                self.sampler = ProcessEngine(policy, tokenizer, **options)
            self._background = ThreadPoolExecutor(1, thread_name_prefix="rft-rollout")
            self._staleness = max_staleness
            for r in self._resumed:  # the batches the killed run had sampled for the next steps
                done: Future[Any] = Future()
                done.set_result(r["rollout"])
                self._queue[r["step"]] = (r["version"], done)
        n_envs = cfg.prompts_per_step // self.dist.world * episodes_per_prompt  # this rank's per step
        self._envs = [[SuiteEnv(s, split="train") for _ in range(n_envs)] for s in self.suites]
        self.held_out = HeldOut(cfg.eval, self._names, cfg.gen.max_new_tokens, cfg.chat.kwargs)
        self.executor = GraderPool(workers=cfg.grader_workers) if cfg.grader_workers > 0 else None

    # ---- each step ---------------------------------------------------------------------------------------

    def reset_envs(self, step: int, share: slice, per_prompt: int, draw: int = 0) -> list[SuiteEnv]:
        """Envs reset to this rank's `share` of step `step`'s prompts (`draw` > 0: a dynamic-sampling
        refill), `per_prompt` consecutive episodes each, every one an env of its prompt's suite."""
        prompts = self.interleave.step(step, self.cfg.prompts_per_step, draw)[share]
        used = [0] * len(self.suites)
        out = []
        for k in range(len(prompts) * per_prompt):
            s, i = prompts[k // per_prompt]
            env = self._envs[s][used[s]]
            used[s] += 1
            env.reset(options={"split": "train", "index": self.cfg.offset + i})
            out.append(env)
        return out

    def steps(self) -> Iterator[int]:
        """The steps still to run; on a fresh start, evaluates first (rank 0)."""
        if self.run is not None and self.start == 0 and self.held_out.due(0, self.cfg.steps):
            self.last_eval = self._evaluate()
            self.run.log(0, self.last_eval)
        yield from range(self.start, self.cfg.steps)

    def rollout(self, step: int, sample: Callable[[int, Engine], T]) -> T:
        """`sample(step, engine)`: this step's rollout. Async: first queue the rollouts of the steps up to
        step + max_staleness not yet queued, with the current weights (version `step`); then wait for this
        step's, sampled with the weights after update max(0, step - max_staleness)."""
        if self._background is None:
            return sample(step, self._engine)
        snapshot = None
        for later in range(step, min(step + self._staleness, self.cfg.steps - 1) + 1):
            if later not in self._queue:
                snapshot = snapshot if snapshot is not None else weight_snapshot(self.policy)
                job = self._background.submit(self._sample_with, snapshot, sample, later)
                self._queue[later] = (step, job)
        self._version, job = self._queue.pop(step)
        out: T = job.result()
        return out

    def _sample_with(self, weights: torch.nn.Module, sample: Callable[[int, Engine], T], step: int) -> T:
        """On the background thread: the sampler takes `weights` (unless it holds them), then samples."""
        assert self.sampler is not None
        if weights is not self._loaded:
            self.sampler.update_weights(weights)
            self._loaded = weights
        return sample(step, self.sampler)

    def push_weights(self) -> None:
        """After an update: the engine samples with the new weights (async: rollouts queued from now on
        take a copy of them)."""
        if self._background is None:
            self._engine.update_weights(self.policy)

    def gather(self, trajs: list[Trajectory], group: int) -> list[Trajectory] | None:
        """Every rank's samples on rank 0, groups renumbered over the whole batch (`group` samples per
        prompt); None on the other ranks."""
        everyone = self.dist.gather(trajs)
        if everyone is not None:
            for i, t in enumerate(everyone):
                t.group = i // group
        return everyone

    def log(
        self,
        step: int,
        metrics: dict[str, float],
        trajs: list[Trajectory],
        progress: Callable[[int, dict[str, float]], None] | None,
    ) -> None:
        """Rank 0, after `step`: evaluate when due (into `metrics`), write metrics and samples every
        log_every steps, report `progress`. Async: `rollout/weight_version` (the updates the step's sampling
        weights had had) and `rollout/staleness` (updates behind the trained policy) join `metrics`."""
        done = step + 1
        if self._version is not None:
            metrics["rollout/weight_version"] = float(self._version)
            metrics["rollout/staleness"] = float(step - self._version)
        if self.held_out.due(done, self.cfg.steps):
            self.last_eval = self._evaluate()
            metrics |= self.last_eval
        assert self.run is not None
        log_step(self.run, done, self.cfg.steps, self.cfg.log_every, metrics, trajs)
        if progress is not None:
            progress(done, metrics)

    def save(
        self,
        step: int,
        model: torch.nn.Module,
        optimizers: Sequence[torch.optim.Optimizer],
        schedulers: Sequence[Any],
        **extra: Any,
    ) -> None:
        """Rank 0, after `step`: a checkpoint every save_every steps and at the end: the policy (`model`:
        the plain module), the optimizers' and schedulers' states, the RNG state, the step, the queued
        async rollouts (waited for) with their weight versions, and the loop's `extra` state. At the end, the run's
        final ``model/`` as well (a standalone folder, LoRA merged)."""
        done = step + 1
        if not ((self.cfg.save_every and done % self.cfg.save_every == 0) or done == self.cfg.steps):
            return
        state = {
            "optimizers": [self.dist.optimizer_state(o) for o in optimizers],
            "schedulers": [s.state_dict() for s in schedulers],
            **extra,
            "rng": rng_state(),
            "step": done,
            "pending_rollouts": [
                {"step": s, "version": v, "rollout": job.result()}
                for s, (v, job) in sorted(self._queue.items())
            ],
        }
        assert self.run is not None
        ckpt = self.run.save_checkpoint(done, model=model, tokenizer=self.tokenizer, state=state)
        if done == self.cfg.steps:  # the run's model/, loadable like an SFT stage's (LoRA merged)
            self.run.save_final_model(ckpt, base_model=self.cfg.model)

    def _evaluate(self) -> dict[str, float]:
        """The held-out evaluation of the current weights; an engine shared with the background sampler is
        given them and run on its thread, after the rollouts queued before."""
        if not self._shared:
            return self.held_out(self._engine, self.tokenizer, self.executor)
        assert self._background is not None
        snapshot = weight_snapshot(self.policy)

        def evaluate() -> dict[str, float]:
            self._engine.update_weights(snapshot)
            self._loaded = snapshot
            return self.held_out(self._engine, self.tokenizer, self.executor)

        return self._background.submit(evaluate).result()

    # ---- teardown ----------------------------------------------------------------------------------------

    @property
    def _engine(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("call Harness.start_engine first")
        return self.engine

    def close(self) -> None:
        """Stop the background rollout, the grader processes, the engines, and close the run folder."""
        try:
            if self._background is not None:
                self._background.shutdown(wait=True, cancel_futures=True)
            if self.executor is not None:
                self.executor.close()
            if self.engine is not None:
                self.engine.close()
            if self.sampler is not None and self.sampler is not self.engine:
                self.sampler.close()
        finally:
            if self.run is not None:
                self.run.close()
