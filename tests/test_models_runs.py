"""Model arguments and run folders (issue 20, items 6 and 8): a model that does not exist fails in about a
second with one line and leaves no run folder; a failed start does not block the next run; a run folder
stands for its model everywhere a model is taken; GRPO/PPO runs end with a loadable ``model/``."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from rft.config import load_config
from rft.models import ModelError, load_policy, model_folder, resolve_model_path
from rft.runs import Run, RunError, trained
from rft.tiny import make_model, make_tokenizer

ROOT = Path(__file__).resolve().parents[1]
RFT = shutil.which("rft") or str(Path(sys.executable).with_name("rft"))
torch.set_num_threads(1)


@dataclass(frozen=True)
class Cfg:
    model: str
    steps: int = 10


def tiny_model(folder: Path) -> Path:
    tok = make_tokenizer(["What is 12 + 5? abc"] * 20)
    make_model(tok, hidden=32, layers=1, heads=2).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def like_suite(tmp_path: Path) -> Path:
    path = tmp_path / "like-v0.yaml"
    path.write_text(
        "id: like-v0\n"
        "source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2}, size: 64}\n"
        "fields: {id: id, reference: answer}\n"
        'prompt: {user: "{{ item.question }}"}\n'
        'grader: {type: string_check, operation: like, input: "{{ sample.output_text }}", reference: "a"}\n'
        "split: 0.25\n"
    )
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def hub(monkeypatch) -> Iterator[list[str]]:
    """A stand-in hub at $HF_ENDPOINT that knows one model, ``org/known``; yields the paths asked for."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200 if self.path == "/api/models/org/known" else 404)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    yield asked
    server.shutdown()
    server.server_close()


# ---- the resolver -------------------------------------------------------------------------------------


def test_a_hub_id_is_probed_once_and_a_missing_one_fails_in_one_line(hub):
    assert resolve_model_path("org/known") == "org/known"
    with pytest.raises(ModelError, match="has no model by that name") as e:
        resolve_model_path("org/REPLACE_ME")
    assert "\n" not in str(e.value) and "--set model=PATH" in str(e.value)
    assert hub == ["/api/models/org/known", "/api/models/org/REPLACE_ME"]  # one request each, no retries


def test_an_unreachable_hub_fails_fast_and_offline_mode_does_not_ask(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match="could not be reached") as e:
        resolve_model_path("REPLACE_ME")
    assert time.perf_counter() - t0 < 5 and "is not a local folder" in str(e.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE is set"):
        resolve_model_path("someone/else")


def test_local_paths_are_never_sent_to_the_hub(tmp_path, hub):
    for bad in ("./nowhere", "../nowhere", str(tmp_path / "nowhere"), "a/b/c", "~/nowhere-rft"):
        with pytest.raises(ModelError, match="no such model folder"):
            resolve_model_path(bad)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelError, match="is a file"):
        resolve_model_path(tmp_path / "file.txt")
    with pytest.raises(ModelError, match="holds no model"):
        resolve_model_path(tmp_path)
    assert hub == []


def test_a_run_folder_stands_for_its_final_model_else_its_latest_checkpoint(tmp_path):
    model = tiny_model(tmp_path / "m")
    loaded, tok = load_policy(model)
    run_dir = tmp_path / "run"
    with Run.open(run_dir, Cfg(str(model))) as run:
        with pytest.raises(ModelError, match="has no model yet"):
            resolve_model_path(run_dir)
        run.save_checkpoint(1, model=loaded, tokenizer=tok, state={})
        second = run.save_checkpoint(2, model=loaded, tokenizer=tok, state={})
        assert resolve_model_path(run_dir) == second / "model"
        assert resolve_model_path(second) == second / "model"  # a checkpoint folder
        final = run.save_final_model(second)
    assert resolve_model_path(run_dir) == final == run_dir / "model"
    assert resolve_model_path(str(final)) == final
    # the final model's files are links to the checkpoint's, and it loads on its own
    assert os.path.samefile(final / "model.safetensors", second / "model" / "model.safetensors")
    again, _ = load_policy(run_dir)
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).logits, loaded(input_ids=ids).logits)
    # a newer checkpoint (a resumed run) makes the old final model stale: it is removed
    with Run.open(run_dir, Cfg(str(model)), resume=True) as run:
        third = run.save_checkpoint(3, model=loaded, tokenizer=tok, state={})
    assert not final.exists() and model_folder(run_dir) == third / "model"


# ---- run folders: a failed start does not block -------------------------------------------------------


def test_a_run_that_never_trained_does_not_block_the_next(tmp_path):
    out = tmp_path / "run"
    with Run.open(out, Cfg("REPLACE_ME")) as run:
        run.log(0, {"eval/accuracy": 0.0})  # the evaluation before training, then the start failed
    assert not trained(out)
    with Run.open(out, Cfg("m")) as run:  # no --resume needed
        assert run.resume_step is None
    with Run.open(out, Cfg("other"), resume=True) as run:  # --resume, other config
        assert run.resume_step is None
    assert (out / "metrics.jsonl").read_text() == "" and "other" in (out / "config.yaml").read_text()


def test_a_trained_folder_blocks_with_a_message_that_says_what_to_do(tmp_path):
    out = tmp_path / "run"
    with Run.open(out, Cfg("m")) as run:
        run.log(1, {"loss/policy": 0.5})
    assert trained(out)
    with pytest.raises(RunError, match=r"--resume.*rm -r .*another out"):
        Run.open(out, Cfg("m"))
    with pytest.raises(RunError, match=r"differs .* in model.*rm -r"):
        Run.open(out, Cfg("other"), resume=True)


# ---- the commands -------------------------------------------------------------------------------------


def _rft(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RFT, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def test_the_recipe_placeholder_fails_in_one_line_and_leaves_no_run_folder(tmp_path):
    """Was: 46 s of hub retries, a 250-line traceback and a run folder that blocked the next run."""
    recipe = ROOT / "examples" / "recipes" / "grpo-tiny-addition.yaml"
    t0 = time.perf_counter()
    res = _rft("train", "grpo", "--config", str(recipe), "--set", "out=runs/x", cwd=tmp_path,
               HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")  # fmt: skip
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "'REPLACE_ME' is not a local folder" in lines[0], res.stderr
    assert time.perf_counter() - t0 < 40  # the interpreter's start-up under load; the check is about 0.1 s
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["train", "sft", "--set", "model=./nowhere", "--set", "suite=rft/addition-v0", "--set", "out=o"],
        ["eval", "--model", "./nowhere", "--suite", "addition-v0", "--out", "o"],
        ["sample", "--model", "./nowhere", "--suite", "addition-v0", "--out", "o/s.jsonl"],
        ["task", "filter", "--model", "./nowhere", "--suite", "addition-v0", "--out", "o"],
        ["serve", "--model", "./nowhere"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_every_command_that_takes_a_model_checks_it_first(tmp_path, args):
    from typer.testing import CliRunner

    from rft.app.cli import app

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        res = CliRunner().invoke(app, args)
    finally:
        os.chdir(cwd)
    assert res.exit_code == 2, res.output
    assert "no such model folder" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_a_pipeline_checks_its_input_model_before_making_its_folder(tmp_path):
    from rft.app.pipeline import load_pipeline, run_pipeline

    spec = tmp_path / "p.yaml"
    spec.write_text(
        f"out: {tmp_path / 'p'}\nmodel: ./nowhere\nsuite: rft/addition-v0\n"
        "stages: [{name: sft, type: sft, steps: 1}]\n"
    )
    with pytest.raises(ModelError, match="no such model folder"):
        run_pipeline(load_pipeline(spec, []))
    assert not (tmp_path / "p").exists()


# ---- GRPO/PPO runs end with a loadable model/ ---------------------------------------------------------


@pytest.mark.parametrize(("kind", "lora"), [("grpo", "0"), ("grpo", "4"), ("ppo", "0")])
def test_an_rl_run_ends_with_a_standalone_model_folder(tmp_path, kind, lora):
    from rft.app.pipeline import stage_class, train_stage
    from rft.eval.evaluate import evaluate_suite

    base = tiny_model(tmp_path / "base")
    suite = like_suite(tmp_path)
    out = tmp_path / "run"
    cfg = load_config(stage_class(kind), None, [
        f"model={base}", f"suite={suite}", f"out={out}", "steps=2", "prompts_per_step=4",
        "gen.max_new_tokens=8", "grader_workers=0", "eval.n=0", "lr=1e-2", f"lora.r={lora}",
        "lora.target_modules=[q_proj, v_proj]",
    ] + (["group_size=4"] if kind == "grpo" else []))  # fmt: skip
    train_stage(kind, cfg, False, lambda *a, **k: None)
    final = out / "model"
    assert (final / "config.json").is_file() and not (final / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(final)  # plain transformers, LoRA merged
    assert not any("lora" in n for n, _ in model.named_parameters())
    before = AutoModelForCausalLM.from_pretrained(base)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.allclose(model(input_ids=ids).logits, before(input_ids=ids).logits)
    if lora == "0":  # the final model is the last checkpoint's
        ckpt = out / "checkpoints" / "step-000002" / "model" / "model.safetensors"
        assert os.path.samefile(final / "model.safetensors", ckpt)
    # `rft eval --model RUN_FOLDER` (was: transformers' "sentencepiece or tiktoken" message)
    scored = evaluate_suite(str(out), str(suite), tmp_path / "eval", n=1, ks=(1,), limit=2,
                            max_new_tokens=4, grader_workers=0)  # fmt: skip
    assert scored["results"] and json.loads((tmp_path / "eval" / "results.json").read_text())


def test_a_lora_run_without_a_final_model_stands_for_its_adapter_checkpoint(tmp_path):
    from peft import LoraConfig, get_peft_model

    base = tiny_model(tmp_path / "base")
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=4, target_modules=["q_proj"])
    )
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)  # B starts at zero: make the adapter matter
    _, tok = load_policy(base)
    with Run.open(tmp_path / "run", Cfg(str(base))) as run:
        ckpt = run.save_checkpoint(1, model=peft_model, tokenizer=tok, state={})
    assert resolve_model_path(tmp_path / "run") == ckpt / "model"
    loaded, _ = load_policy(tmp_path / "run")  # transformers loads the base and the adapter
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, peft_model(input_ids=ids).logits, atol=1e-5)


def test_a_hub_id_in_the_local_cache_needs_no_probe(tmp_path, hub, monkeypatch):
    import huggingface_hub.constants

    snapshot = tmp_path / "hub" / "models--org--cached" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--cached" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--cached" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model_path("org/cached") == "org/cached"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_path("org/cached") == "org/cached"
    assert hub == []
