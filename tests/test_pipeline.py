"""`rft run` pipelines: config checks, stages handing models on, evaluation after each stage, the report,
skipping finished stages, rerunning from a stage, resuming where a stage failed or was killed; `rft demo`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rft.app.pipeline import PipelineError, load_pipeline, run_pipeline
from rft.app.view_data import ViewRoot
from rft.config import ConfigError

RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))


def small(out: Path, **grpo: object) -> dict:
    """A pipeline of a few seconds: tiny model, SFT, GRPO, an extra eval stage."""
    return {
        "out": str(out),
        "suite": "rft/addition-v0",
        "model": {"tiny": {"hidden": 64, "layers": 1, "heads": 2, "corpus": 300}},
        "eval": {"limit": 40, "max_new_tokens": 8},
        "stages": [
            {"name": "sft", "type": "sft", "limit": 300, "steps": 30, "batch_size": 32, "lr": 2e-3,
             "max_grad_norm": 0, "grader_workers": 0, "eval": {"every": 10, "n": 40, "max_new_tokens": 8}},
            {"name": "grpo", "type": "grpo", "offset": 300, "steps": 4, "prompts_per_step": 4, "group_size": 4,
             "lr": 1e-4, "gen": {"max_new_tokens": 8}, "grader_workers": 0, "eval": {"every": 2, "n": 20}, **grpo},
            {"name": "train-check", "type": "eval", "split": "train", "limit": 20, "n": 2, "ks": [1, 2],
             "temperature": 1.0},
        ],
    }  # fmt: skip


# ---- config ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stages": []}, "stages is empty"),
        ({"model": None}, "give the input model"),
        ({"model": {"big": {}}}, "tiny"),
        ({"colour": "blue"}, "unknown pipeline keys ['colour']"),
        ({"stages": [{"name": "a", "type": "rlhf"}]}, "type must be one of"),
        ({"stages": [{"name": "a", "type": "sft"}, {"name": "a", "type": "sft"}]}, "unique"),
        ({"stages": [{"name": "base", "type": "sft"}]}, "stage name 'base'"),
        ({"stages": [{"name": "g", "type": "grpo", "group_size": 1}]}, "group_size must be >= 2"),
        ({"stages": [{"name": "g", "type": "grpo", "stepz": 3}]}, "stages.g"),
        ({"stages": [{"name": "e", "type": "eval", "temprature": 1}]}, "unknown eval keys"),
        ({"eval": {"n": 2, "ks": [4]}}, "every k in 1..n"),
    ],
)
def test_pipeline_config_errors_say_what_to_fix(tmp_path, change, message):
    with pytest.raises(ConfigError, match=None) as e:
        load_pipeline(small(tmp_path) | change)
    assert message in str(e.value)


def test_eval_settings_are_one_spec_checked_before_running(tmp_path):
    """The `eval:` section is an EvalSpec with the pipeline's defaults; an eval stage's keys go over it, and
    their values are checked when the pipeline loads."""
    from rft.eval.spec import EvalSpec

    p = load_pipeline(small(tmp_path))
    spec = p.eval_spec()
    assert isinstance(spec, EvalSpec) and spec.suite == "rft/addition-v0" and spec.limit == 40
    assert (spec.batch_prompts, spec.grader_workers, spec.max_new_tokens) == (64, 0, 8)
    extra = p.eval_spec(p.stages[2])
    assert (extra.split, extra.n, extra.ks, extra.temperature, extra.max_new_tokens) == (
        "train",
        2,
        (1, 2),
        1.0,
        8,
    )
    bad = small(tmp_path)
    bad["stages"][2]["temperature"] = 0
    with pytest.raises(ConfigError, match="stages.train-check: temperature 0"):
        load_pipeline(bad)
    with pytest.raises(ConfigError, match="eval: top_p must be in"):
        load_pipeline(small(tmp_path) | {"eval": {"top_p": 2}})


def test_overrides_reach_top_level_and_stage_keys(tmp_path):
    p = load_pipeline(small(tmp_path), ["grpo.steps=7", "sft.eval.every=5", "eval.limit=10", "out=elsewhere",
                                        "model.tiny.seed=3"])  # fmt: skip
    assert p.out == "elsewhere" and p.eval.limit == 10 and p.tiny is not None and p.tiny.seed == 3
    grpo = p.stage_config(p.stages[1], "some/model")
    assert grpo.steps == 7 and grpo.model == "some/model" and grpo.out == str(Path("elsewhere") / "grpo")
    assert grpo.suite == "rft/addition-v0" and grpo.offset == 300
    assert p.stage_config(p.stages[0], "m").eval.every == 5
    with pytest.raises(ConfigError, match="not a pipeline key"):
        load_pipeline(small(tmp_path), ["dpo.steps=3"])
    with pytest.raises(ConfigError, match="key=value"):
        load_pipeline(small(tmp_path), ["grpo.steps"])


def test_the_pipeline_seed_is_every_stages_and_the_tiny_models(tmp_path):
    """`seed: S` (`rft demo --seed S`) reaches what a stage does not set itself; it was accepted and ignored."""
    raw = small(tmp_path)
    raw["stages"][0]["seed"] = 11  # a stage's own seed wins
    p = load_pipeline(raw, ["seed=5"])
    assert p.seed == 5 and p.tiny is not None and p.tiny.seed == 5
    assert p.stage_config(p.stages[0], "m").seed == 11 and p.stage_config(p.stages[1], "m").seed == 5
    raw["model"]["tiny"]["seed"] = 2
    assert load_pipeline(raw, ["seed=5"]).tiny.seed == 2
    assert load_pipeline(small(tmp_path)).stage_config(p.stages[1], "m").seed == 0  # unset: the default
    with pytest.raises(ConfigError, match="seed must be an integer"):
        load_pipeline(small(tmp_path), ["seed=abc"])


# ---- running -----------------------------------------------------------------------------------------


def test_pipeline_runs_reports_skips_and_reruns_from_a_stage(tmp_path):
    out = tmp_path / "p"
    said: list[str] = []
    summary = run_pipeline(load_pipeline(small(out)), say=said.append)
    state = json.loads((out / "pipeline.json").read_text())["stages"]
    assert [state[n]["status"] for n in ("base", "sft", "grpo", "train-check")] == ["done"] * 4
    # each stage took the previous one's model
    assert state["sft"]["input"] == str(out / "base" / "model")
    assert state["grpo"]["input"] == str(out / "sft" / "model")
    assert (out / "grpo" / "model" / "config.json").is_file()
    # results.json: the schema, a row per model; comparisons of the final model
    doc = json.loads((out / "results.json").read_text())
    for r in doc["results"]:
        assert set(r) >= {"model", "suite", "split", "metric", "value", "ci95", "n_problems"}
    pass1 = {r["model"]: r for r in doc["results"] if r["metric"] == "pass@1" and r["split"] == "heldout"}
    assert set(pass1) == {"base", "sft", "grpo"} and all(r["n_problems"] == 40 for r in pass1.values())
    assert any(r["metric"] == "pass@2" and r["split"] == "train" for r in doc["results"])  # the eval stage
    assert [(c["a"], c["b"]) for c in doc["comparisons"]] == [("base", "grpo"), ("sft", "grpo")]
    assert [r["stage"] for r in summary["rows"]] == ["base", "sft", "grpo"]
    assert summary["rows"][1]["vs_base"] == pytest.approx(pass1["sft"]["value"] - pass1["base"]["value"])
    report = (out / "report.md").read_text()
    assert "| grpo |" in report and "compare/grpo-vs-sft" in report and "![training.png]" in report
    assert (out / "training.png").stat().st_size > 0 and (
        out / "compare" / "grpo-vs-base" / "compare.json"
    ).is_file()
    # curves: held-out accuracy during SFT (steps 0, 10, 20, 30) and GRPO (0, 2, 4), steps counted on
    from rft.app.report import training_curves

    curves = training_curves(load_pipeline(small(out)), state)
    assert [pt[0] for pt in curves[0]["accuracy"]] == [0, 10, 20, 30]
    assert [pt[0] for pt in curves[1]["accuracy"]] == [30, 32, 34] and len(curves[1]["reward"]) == 4

    # run again: every stage is kept, nothing retrained
    sft_weights = out / "sft" / "model" / "model.safetensors"
    stamp = sft_weights.stat().st_mtime_ns
    said.clear()
    run_pipeline(load_pipeline(small(out)), say=said.append)
    assert "sft: done before, skipped" in said and "grpo: done before, skipped" in said
    assert not any("training" in line for line in said)
    # a changed stage is not silently reused or overwritten
    with pytest.raises(PipelineError, match="--from grpo"):
        run_pipeline(load_pipeline(small(out), ["grpo.steps=6"]))
    # --from grpo: grpo and what follows run again; sft is kept
    run_pipeline(load_pipeline(small(out), ["grpo.steps=6"]), restart_from="grpo")
    assert sft_weights.stat().st_mtime_ns == stamp
    steps = [json.loads(line)["step"] for line in (out / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 6


def test_a_failed_stage_is_where_the_next_run_starts(tmp_path):
    out = tmp_path / "p"
    with pytest.raises(ValueError, match="offset 5000 leaves no train problems"):
        run_pipeline(load_pipeline(small(out), ["grpo.offset=5000"]))
    state = json.loads((out / "pipeline.json").read_text())["stages"]
    assert state["sft"]["status"] == "done" and state["grpo"]["status"] == "failed"
    said: list[str] = []
    run_pipeline(load_pipeline(small(out), ["grpo.offset=300"]), say=said.append)
    assert "sft: done before, skipped" in said and any(line.startswith("grpo: training") for line in said)
    assert json.loads((out / "pipeline.json").read_text())["stages"]["grpo"]["status"] == "done"


def test_a_killed_grpo_stage_resumes_from_its_checkpoint(tmp_path):
    out = tmp_path / "p"
    cfg = small(out, steps=10, save_every=2)
    cfg["stages"] = cfg["stages"][:2]
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [RFT, "run", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    ckpt = out / "grpo" / "checkpoints" / "step-000004"
    deadline = time.monotonic() + 300
    while not ckpt.is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((out / "pipeline.json").read_text())["stages"]["grpo"]["status"] == "running"
    res = subprocess.run([RFT, "run", str(path)], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "sft: done before, skipped" in res.stdout and "grpo: resuming grpo" in res.stdout
    rows = [json.loads(line) for line in (out / "grpo" / "metrics.jsonl").read_text().splitlines()]
    trained = [r["step"] for r in rows if "reward/mean" in r]
    assert trained == list(range(1, 11))  # each step once: the killed run's later steps were dropped


def test_rft_demo_meets_its_goals(tmp_path):
    """The README's first command: a tiny model, SFT, GRPO, held-out evaluation; its goals hold."""
    out = tmp_path / "demo"
    res = subprocess.run([RFT, "demo", "--out", str(out)], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("met  ") == 2, res.stdout[-2000:]
    assert "diagnose: no problems found" in res.stdout, res.stdout[-2000:]  # the GRPO stage's verdict
    doc = json.loads((out / "results.json").read_text())
    acc = {r["model"]: r for r in doc["results"] if r["metric"] == "pass@1"}
    assert acc["grpo"]["value"] >= 0.70 and acc["base"]["value"] < 0.05
    assert acc["grpo"]["value"] - acc["sft"]["value"] >= 0.25
    assert acc["grpo"]["ci95"][0] > acc["sft"]["ci95"][1]
    for name in ("report.md", "training.png", "stages.png"):
        assert (out / name).is_file()
    assert f"rft view {out}" in res.stdout  # its last line: the viewer's command for the folder
    tree = ViewRoot(out).tree()
    assert tree["kind"] == "pipeline" and [r["name"] for r in tree["runs"] if r["rollouts"]] == ["grpo"]


def test_dpo_samples_its_input_model_and_ppo_follows(tmp_path, warm):
    model, suite = warm  # a tiny model that solves about half of its suite's sums
    out = tmp_path / "p"
    cfg = small(out) | {"model": str(model), "suite": str(suite)}
    cfg["stages"] = [
        {"name": "dpo", "type": "dpo", "steps": 3, "batch_size": 8, "beta": 0.5, "lr": 3e-5, "grader_workers": 0,
         "sample": {"n": 4, "limit": 48, "max_new_tokens": 12}, "eval": {"n": 20, "max_new_tokens": 12}},
        {"name": "ppo", "type": "ppo", "steps": 2, "prompts_per_step": 4, "lr": 1e-4, "gen": {"max_new_tokens": 12},
         "grader_workers": 0, "eval": {"n": 0}},
    ]  # fmt: skip
    run_pipeline(load_pipeline(cfg))
    state = json.loads((out / "pipeline.json").read_text())["stages"]
    assert state["base"]["model"] == str(model) and state["dpo"]["input"] == str(model)
    assert state["ppo"]["input"] == str(out / "dpo" / "model")
    samples = [json.loads(line) for line in (out / "dpo" / "samples.jsonl").read_text().splitlines()]
    assert (
        len(samples) == 4 * 48 and any(s["passed"] for s in samples) and not all(s["passed"] for s in samples)
    )
    assert (out / "ppo" / "model" / "config.json").is_file()
    doc = json.loads((out / "results.json").read_text())
    assert {r["model"] for r in doc["results"]} == {"base", "dpo", "ppo"}


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "examples" / "pipelines").glob("*.yaml"))
                         + [Path(__file__).resolve().parents[1] / "rft" / "app" / "pipelines" / "demo.yaml"])  # fmt: skip
def test_shipped_pipelines_load(path):
    p = load_pipeline(path)
    assert p.stages and all(p.stage_config(s, "m") is not None for s in p.stages)
