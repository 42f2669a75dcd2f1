"""rft.config (dataclasses from YAML + overrides) and rft.runs (run folders, checkpoints, resume, export)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from rft.config import ConfigError, config_diff, from_dict, load_config, save_config, to_dict
from rft.runs import Run, RunError, export_model, rng_state, set_rng_state
from rft.tiny import make_model, make_tokenizer


@dataclass
class LossCfg:
    agg: Literal["token", "seq", "dapo"] = "token"
    beta: float = 0.0
    clip: float = 0.2

    def __post_init__(self) -> None:
        if self.clip <= 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")


@dataclass(frozen=True)
class SamplingCfg:
    temperature: float = 1.0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()


@dataclass
class EvalCfg:
    every: int = 10
    suites: list[str] = field(default_factory=list)


@dataclass
class TrainCfg:
    model: str
    lr: float = 1e-6
    steps: int = 10
    save_every: int = 5
    seed: int | None = None
    out: Path | None = None
    loss: LossCfg = field(default_factory=LossCfg)
    sampling: SamplingCfg = field(default_factory=SamplingCfg)
    eval: EvalCfg | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ---- config ----------------------------------------------------------------------------------------


def test_from_dict_builds_nested_configs_and_coerces():
    cfg = from_dict(
        TrainCfg,
        {
            "model": "m",
            "lr": 1,  # an int is a float
            "loss": {"agg": "dapo", "beta": "1e-3"},  # YAML reads 1e-3 (no dot) as a string
            "sampling": {"stop": ["\n", "</a>"]},
            "eval": {"suites": ["gsm8k"]},
            "out": "runs/x",
            "extra": {"k": [1, 2]},
        },
    )
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.loss == LossCfg(agg="dapo", beta=1e-3)
    assert cfg.sampling.stop == ("\n", "</a>")
    assert cfg.eval == EvalCfg(every=10, suites=["gsm8k"])
    assert cfg.out == Path("runs/x") and cfg.extra == {"k": [1, 2]}
    assert from_dict(TrainCfg, {"model": "m"}).eval is None


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"model": "m", "loss": {"agg": "mean"}},
            "loss.agg must be one of 'token', 'seq', 'dapo'; got 'mean'",
        ),
        ({"model": "m", "loss": {"betta": 0.1}}, "unknown key 'loss.betta' (did you mean 'beta'?)"),
        ({"model": "m", "lrr": 0.1}, "unknown key 'lrr'"),
        ({"model": "m", "steps": "ten"}, "steps must be an integer, got str 'ten'"),
        ({"model": "m", "steps": 2.5}, "steps must be an integer"),
        ({"model": "m", "seed": "x"}, "seed must be an integer"),
        ({"model": "m", "sampling": {"stop": "\n"}}, "sampling.stop must be a list"),
        ({"model": "m", "loss": 3}, "'loss' must be a mapping"),
        ({"model": 7}, "model must be a string, got int 7"),
        ({"model": "m", "loss": {"clip": 0}}, "loss: clip must be > 0, got 0.0"),
        ({"lr": 0.1}, "missing required key(s): model"),
    ],
)
def test_from_dict_errors_name_the_dotted_key(data, message):
    with pytest.raises(ConfigError) as e:
        from_dict(TrainCfg, data)
    assert message in str(e.value)


def test_unknown_key_lists_the_allowed_keys():
    with pytest.raises(ConfigError, match="'loss' allows: agg, beta, clip"):
        from_dict(TrainCfg, {"model": "m", "loss": {"zzz": 1}})


def test_load_config_merges_yaml_and_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: tiny\nlr: 1.0e-6\nloss:\n  beta: 0.04\n  clip: 0.3\nextra: {a: 1, b: 2}\n")
    cfg = load_config(
        TrainCfg,
        recipe,
        ["lr=1e-4", "loss.agg=dapo", 'sampling.stop=["\\n"]', "eval.every=3", "extra={c: 3}", "seed=null"],
    )
    assert cfg.lr == 1e-4 and cfg.loss == LossCfg(agg="dapo", beta=0.04, clip=0.3)
    assert cfg.sampling.stop == ("\n",)
    assert cfg.eval == EvalCfg(every=3)
    assert cfg.extra == {"c": 3}  # a mapping replaces a dict field
    assert load_config(TrainCfg, recipe, ["loss={agg: seq}"]).loss == LossCfg(agg="seq", beta=0.04, clip=0.3)
    assert load_config(TrainCfg, None, ["model=x", "extra.k.j=1"]).extra == {"k": {"j": 1}}


@pytest.mark.parametrize(
    "override, message",
    [
        ("loss.betta=0.1", "unknown key 'loss.betta'"),
        ("nope=1", "unknown key 'nope'"),
        ("lr.x=1", "'lr' is a"),
        ("lr", "must look like key=value"),
        ("loss.clip=-1", "loss: clip must be > 0"),
        ("loss.agg=ppo", "loss.agg must be one of"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(TrainCfg, None, ["model=m", override])
    assert message in str(e.value)


def test_bad_yaml_files(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(TrainCfg, tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(TrainCfg, tmp_path / "missing.yaml")


def test_save_config_round_trips_in_field_order(tmp_path):
    cfg = from_dict(TrainCfg, {"model": "m", "out": "o", "sampling": {"stop": ["\n"]}, "eval": {}})
    path = save_config(cfg, tmp_path / "c.yaml")
    text = path.read_text()
    assert list(yaml.safe_load(text)) == list(to_dict(cfg)) == ["model", "lr", "steps", "save_every", "seed",
                                                                "out", "loss", "sampling", "eval", "extra"]  # fmt: skip
    assert to_dict(cfg)["sampling"]["stop"] == ["\n"] and to_dict(cfg)["out"] == "o"
    assert load_config(TrainCfg, path) == cfg


def test_config_diff():
    a = {"lr": 1.0, "loss": {"beta": 0.0, "agg": "token"}, "x": [1]}
    b = {"lr": 1.0, "loss": {"beta": 0.1, "agg": "token"}, "x": [1], "y": 2}
    assert config_diff(a, b) == ["loss.beta", "y"]
    assert config_diff(a, a) == []


# ---- runs ------------------------------------------------------------------------------------------


class FakeModel:
    """Saves a marker file like `save_pretrained` would; optionally fails half way."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def save_pretrained(self, path: Path) -> None:
        Path(path).mkdir(parents=True)
        (Path(path) / "weights.bin").write_text("w")
        if self.fail:
            raise RuntimeError("killed while saving")


def _cfg(**kw: Any) -> TrainCfg:
    return TrainCfg(model="m", **kw)


def test_new_run_writes_config_and_refuses_to_reopen(tmp_path):
    out = tmp_path / "run"
    with Run.open(out, _cfg(lr=0.1)) as run:
        assert run.dir == out and run.resume_step is None
        run.log(1, {"loss/policy": torch.tensor(0.5), "reward/math": np.float32(1.0)})
    assert yaml.safe_load((out / "config.yaml").read_text())["lr"] == 0.1
    assert json.loads((out / "metrics.jsonl").read_text()) == {
        "step": 1,
        "loss/policy": 0.5,
        "reward/math": 1.0,
    }
    with pytest.raises(RunError, match=r"trained already; to continue it pass --resume .* delete the folder"):
        Run.open(out, _cfg(lr=0.1))


def test_resume_checks_the_config(tmp_path):
    out = tmp_path / "run"
    with Run.open(out, _cfg()) as run:
        run.log(1, {"loss/policy": 0.5})  # it trained: its config counts (an untrained one is replaced)
    with pytest.raises(RunError, match=r"differs from its config.yaml in lr, loss\.beta;"):
        Run.open(out, _cfg(lr=0.5, loss=LossCfg(beta=0.1)), resume=True)
    with Run.open(out, _cfg(steps=99, save_every=1), resume=True) as run:
        assert run.resume_step is None  # no checkpoint yet: start from scratch
    assert yaml.safe_load((out / "config.yaml").read_text())["steps"] == 99
    Run.open(out, _cfg(steps=99, save_every=1, lr=0.5), resume=True, allow_changes=["lr"]).close()


def test_checkpoints_are_atomic_pruned_and_latest(tmp_path):
    out = tmp_path / "run"
    with Run.open(out, _cfg()) as run:
        assert run.latest_checkpoint() is None
        for step in (10, 20, 30):
            path = run.save_checkpoint(step, model=FakeModel(), tokenizer=None, state={"step": step})
            assert path == out / "checkpoints" / f"step-{step:06d}"
        assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-000020", "step-000030"]
        assert (out / "checkpoints" / "latest").read_text().strip() == "step-000030"
        with pytest.raises(RuntimeError, match="killed"):
            run.save_checkpoint(40, model=FakeModel(fail=True), tokenizer=None, state={})
        assert list((out / "checkpoints").glob(".tmp-step-000040-*"))  # the torn save is left behind ...
        assert run.latest_checkpoint() == out / "checkpoints" / "step-000030"  # ... and never picked
        assert Run.load_state(run.latest_checkpoint()) == {"step": 30}
        with pytest.raises(ValueError, match="keep must be >= 1"):
            run.save_checkpoint(50, model=FakeModel(), tokenizer=None, state={}, keep=0)
    (out / "checkpoints" / "latest").write_text("step-000099\n")  # points nowhere: fall back to the highest
    with Run.open(out, _cfg(), resume=True) as run:
        assert not list((out / "checkpoints").glob(".tmp-*"))  # cleaned when the run opens
        assert run.resume_step == 30 and run.latest_checkpoint().name == "step-000030"
        run.save_checkpoint(30, model=FakeModel(), tokenizer=None, state={"again": True})  # same step again
        assert Run.load_state(run.latest_checkpoint()) == {"again": True}


def test_resume_truncates_logs_to_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    with Run.open(out, _cfg()) as run:
        for step in range(1, 6):
            run.log(step, {"loss/policy": float(step)})
            run.log_rollouts(step, [{"completion": "é", "reward": 1.0}])
            if step == 3:
                run.save_checkpoint(step, model=FakeModel(), tokenizer=None, state={})
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "loss/pol')  # a torn line from a killed process
    with Run.open(out, _cfg(), resume=True) as run:
        assert run.resume_step == 3
        run.log(4, {"loss/policy": 40.0})
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    rows = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[0]["completion"] == "é"


def test_rng_state_round_trip(tmp_path):
    state = rng_state()
    first = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    torch.save(state, tmp_path / "rng.pt")  # survives a checkpoint
    random.random(), np.random.rand(), torch.rand(5)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=False))
    assert (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()) == first


# ---- real models -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    tok = make_tokenizer()
    model = make_model(tok, hidden=32, layers=1, heads=2).eval()
    ids = torch.tensor([tok("hello world 12", add_special_tokens=False)["input_ids"]])  # (1, T)
    return model, tok, ids


def _logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits  # (1, T, V)


def test_checkpoint_and_export_of_a_full_model(tiny, tmp_path):
    model, tok, ids = tiny
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with Run.open(tmp_path / "run", _cfg()) as run:
        ckpt = run.save_checkpoint(
            7, model=model, tokenizer=tok, state={"step": 7, "optimizer": opt.state_dict()}
        )
    state = Run.load_state(ckpt)
    assert state["step"] == 7 and "param_groups" in state["optimizer"]
    loaded = AutoModelForCausalLM.from_pretrained(ckpt / "model")
    assert torch.allclose(_logits(loaded, ids), _logits(model, ids), atol=1e-5)
    out = export_model(tmp_path / "run", tmp_path / "export")
    exported = AutoModelForCausalLM.from_pretrained(out)
    assert torch.allclose(_logits(exported, ids), _logits(model, ids), atol=1e-5)
    assert AutoTokenizer.from_pretrained(out)("hello").input_ids == tok("hello").input_ids
    with pytest.raises(RunError, match="not empty"):
        export_model(tmp_path / "run", tmp_path / "export")


def test_export_merges_a_lora_checkpoint(tiny, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tok, ids = tiny
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base")  # the adapter records this path
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).eval()
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)  # B starts at zero: make the adapter matter
    expected = _logits(peft_model, ids)
    assert not torch.allclose(expected, _logits(model, ids), atol=1e-3)
    with Run.open(tmp_path / "run", _cfg()) as run:
        ckpt = run.save_checkpoint(1, model=peft_model, tokenizer=tok, state={})
    assert (ckpt / "model" / "adapter_config.json").is_file() and not (
        ckpt / "model" / "config.json"
    ).exists()
    out = export_model(ckpt, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert torch.allclose(_logits(merged, ids), expected, atol=1e-5)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    # the base can be given explicitly, and a missing one says what to pass
    again = export_model(tmp_path / "run", tmp_path / "merged2", base_model=str(tmp_path / "base"))
    assert torch.allclose(_logits(AutoModelForCausalLM.from_pretrained(again), ids), expected, atol=1e-5)
    with pytest.raises(RunError, match="pass base_model="):
        export_model(ckpt, tmp_path / "merged3", base_model=str(tmp_path / "nowhere"))
