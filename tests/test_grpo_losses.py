"""GRPO with the other policy losses (gspo, cispo) and advantage estimators (rloo, reinforce_pp), and with a
loss and an estimator of one's own by import path: config checks, and each one learning on 2-digit addition.
The maths is tested by hand in tests/test_losses_variants.py."""

from __future__ import annotations

import json

import pytest
import torch

from rft.config import ConfigError, load_config
from rft.rl.grpo import GRPOConfig, LossConfig, train

torch.set_num_threads(1)


def test_clip_ranges_default_by_loss_and_stay_overridable():
    assert (LossConfig().eps_low, LossConfig().eps_high) == (0.2, 0.28)
    assert (LossConfig(name="gspo").eps_low, LossConfig(name="gspo").eps_high) == (3e-4, 4e-4)
    assert (LossConfig(name="cispo").eps_low, LossConfig(name="cispo").eps_high) == (1.0, 4.0)
    assert LossConfig(name="gspo", eps_low=1e-3).eps_high == 1e-3  # never below eps_low
    assert LossConfig(eps_low=0.1, eps_high=0.3).eps_high == 0.3


def test_bad_names_fail_when_the_config_is_made_with_what_to_do():
    with pytest.raises(ValueError, match="not a built-in .*clip, gspo, cispo"):
        LossConfig(name="ppo2")
    with pytest.raises(ValueError, match="not a built-in .*grpo, rloo, reinforce_pp"):
        LossConfig(advantage="gae")
    with pytest.raises(ValueError, match="cannot import it.*PYTHONPATH"):
        LossConfig(name="no_such_module_xyz:loss")
    with pytest.raises(ValueError, match="cannot import it"):
        LossConfig(advantage="_custom_losses:missing")
    with pytest.raises(ValueError, match="not callable"):
        LossConfig(name="_custom_losses:not_callable")
    with pytest.raises(ValueError, match="eps_low"):
        LossConfig(eps_low=1.0)  # only cispo takes 1 (no lower bound)
    with pytest.raises(ValueError, match="gspo weighs whole sequences"):
        LossConfig(name="gspo", agg="dr_grpo")
    with pytest.raises(ConfigError, match="loss.name"):
        load_config(GRPOConfig, None, ["model=m", "suite=s", "loss.name=nope"])


def _learn(tmp_path, warm, loss: list[str], steps: int = 120) -> tuple[dict, dict]:
    model, suite = warm
    cfg = load_config(
        GRPOConfig,
        None,
        [f"model={model}", f"suite={suite}", f"out={tmp_path / 'run'}", f"steps={steps}", "prompts_per_step=8",
         "group_size=8", "gen.max_new_tokens=12", "lr=1e-4", "eval.n=200", "grader_workers=0", *loss],
    )  # fmt: skip
    final = train(cfg)
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    return first, final


@pytest.mark.slow
@pytest.mark.parametrize(
    "loss",
    [["loss.name=gspo", "loss.agg=grpo"], ["loss.name=cispo"], ["loss.advantage=rloo"],
     ["loss.advantage=reinforce_pp"]],
    ids=["gspo", "cispo", "rloo", "reinforce_pp"],
)  # fmt: skip
def test_each_loss_and_baseline_raises_heldout_accuracy(tmp_path, warm, loss):
    """As tests/test_grpo.py's clipped-loss test: from about half right, 120 steps raise greedy held-out
    accuracy on 200 problems by 0.08 or more."""
    first, final = _learn(tmp_path, warm, loss)
    assert final["eval/accuracy"] >= first["eval/accuracy"] + 0.08, (first, final)


def test_a_loss_and_an_advantage_of_ones_own_by_import_path(tmp_path, warm):
    import _custom_losses

    _custom_losses.CALLS.update(loss=0, advantage=0)
    first, final = _learn(
        tmp_path, warm, ["loss.name=_custom_losses:plain_reinforce", "loss.advantage=_custom_losses:centred"],
        steps=3,
    )  # fmt: skip
    assert _custom_losses.CALLS["advantage"] == 3
    assert _custom_losses.CALLS["loss"] >= 3
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(r.get("loss/policy") is not None for r in rows if r["step"] > 0)


def test_entropy_is_logged_and_the_bonus_raises_it_where_rewards_give_no_signal(tmp_path, warm):
    """Every sample scores 0 (a grader no answer passes): the advantages are all 0, so without the bonus no
    row is trained, and with it the only gradient is the entropy's, which must go up."""
    from _warm import ADD_SUITE

    model, _ = warm
    suite = tmp_path / "never-v0.yaml"
    suite.write_text(ADD_SUITE.replace("id: add-v0", "id: never-v0").replace(
        'grader: {type: math, input: "{{ sample.output_text }}", reference: "{{ item.reference }}", form: number}',
        'grader: {type: string_check, operation: eq, input: "{{ sample.output_text }}", reference: "no answer"}',
    ))  # fmt: skip

    def run(coef: float, out: str) -> list[dict]:
        cfg = load_config(
            GRPOConfig,
            None,
            [f"model={model}", f"suite={suite}", f"out={tmp_path / out}", "steps=6", "prompts_per_step=4",
             "group_size=4", "gen.max_new_tokens=12", "lr=3e-3", "eval.n=0", "grader_workers=0",
             f"loss.entropy_coef={coef}"],
        )  # fmt: skip
        train(cfg)
        rows = [json.loads(line) for line in (tmp_path / out / "metrics.jsonl").read_text().splitlines()]
        return [r for r in rows if "loss/entropy" in r or "rollout/trained_rows" in r]

    plain = run(0.0, "plain")
    assert all(r["rollout/trained_rows"] == 0 for r in plain)  # no signal, no update
    bonus = run(1.0, "bonus")
    ent = [r["loss/entropy"] for r in bonus]
    assert all(e > 0 for e in ent)
    assert ent[-1] > ent[0] * 1.2, ent
