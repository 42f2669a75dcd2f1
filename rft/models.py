"""Loading the policy: any Hugging Face causal LM by id or path, optionally with a LoRA adapter (peft).

`resolve_model_path` is the one place a model argument is checked and turned into what to load: a model
folder, a run folder (its final ``model/``, else its latest checkpoint's model), or a hub id that is in
the local cache or that one quick probe of the hub finds. Every command calls it before it creates
anything, so a typo or a placeholder fails in a second with one line that says what to pass instead.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "adamw",
    "LoraSpec",
    "ModelError",
    "load_policy",
    "resolve_model_path",
    "model_folder",
    "latest_checkpoint",
    "complete_checkpoints",
    "trainable_parameters",
    "pick_dtype",
    "training_precision",
    "autocast",
    "fast_attention",
]

# bf16-mixed: float32 weights (and optimizer state), forward passes under bf16 autocast
Dtype = Literal["auto", "float32", "bfloat16", "float16", "bf16-mixed"]


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA adapter over the named modules (peft); ``r=0`` means no adapter (train all weights)."""

    r: int = 0  # LoRA rank; 0 = no adapter, train all weights
    alpha: int = 32  # LoRA scaling (alpha / r)
    dropout: float = 0.0  # dropout on the adapter's input
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # the layers to adapt

    def __post_init__(self) -> None:
        if self.r < 0 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ValueError(f"lora: need r >= 0, alpha > 0, 0 <= dropout < 1; got {self}")
        if self.r and not self.target_modules:
            raise ValueError(
                "lora.target_modules is empty; name the linear layers to adapt, e.g. [q_proj, v_proj]"
            )


def _device(device: str) -> torch.device:
    return torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )


def _gpu_bf16(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def pick_dtype(dtype: Dtype, device: torch.device) -> torch.dtype:
    """The weights' dtype for `dtype`. ``auto``: bf16 on a GPU that supports it, else float32 (CPU work in
    bf16 is slow); ``bf16-mixed``: float32 (the forward passes run under `autocast`). For inference;
    training resolves ``auto`` with `training_precision` first."""
    if dtype == "auto":
        return torch.bfloat16 if _gpu_bf16(device) else torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    return table.get(dtype, torch.float32)


def training_precision(dtype: Dtype, device: str, lora: bool) -> tuple[Dtype, torch.dtype | None]:
    """(the dtype to load a model to train in, the autocast dtype or None). ``auto`` on a GPU with bf16:
    full weights train in mixed precision (``bf16-mixed``: float32 weights and Adam state, bf16 matrix
    products); a LoRA model's frozen base loads in bf16 (peft keeps the adapter in float32); elsewhere
    float32. Pure ``bfloat16`` weights halve the memory, but AdamW drops every update smaller than half a
    weight's bf16 spacing (|w| / 256): two GRPO steps of a tiny model left 88% of its weights unchanged at
    lr 1e-5 and 98% at lr 1e-6 (tests/test_precision.py)."""
    mixed = dtype == "bf16-mixed" or (dtype == "auto" and not lora and _gpu_bf16(_device(device)))
    return ("bf16-mixed", torch.bfloat16) if mixed else (dtype, None)


def fast_attention(device: str | torch.device) -> contextlib.AbstractContextManager:
    """On a GPU, keep cuDNN out of `scaled_dot_product_attention`'s backends while the context is open
    (flash, memory-efficient and math attention stay; torch's flags are process-wide: open it around a
    whole run, not per call from several threads). torch 2.11 prefers cuDNN on Hopper, and cuDNN builds an
    execution plan for every new attention shape, while RL batches change shape every step. Measured on an
    H200 (tiny model, GRPO, 30 steps): update 0.247 s -> 0.042 s per step with a shared prefix, 0.079 ->
    0.026 without. Elsewhere a no-op."""
    dev = _device(device) if isinstance(device, str) else device
    if dev.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def autocast(compute: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """Forward passes in `compute` (bf16 mixed precision), or a no-op for None."""
    return torch.autocast(device.type, dtype=compute) if compute is not None else contextlib.nullcontext()


def load_policy(
    name_or_path: str | Path,
    *,
    lora: LoraSpec | None = None,
    adapter: str | Path | None = None,
    dtype: Dtype = "auto",
    device: str = "auto",
    gradient_checkpointing: bool = False,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model and tokenizer at `name_or_path`; with `lora` (r > 0) wrapped in a fresh trainable
    adapter, or with `adapter` (a saved peft folder, e.g. a checkpoint's) loaded trainable on top.
    `revision` and `trust_remote_code` go to transformers' `from_pretrained` (a hub id's branch, tag or
    commit; a model whose code is in its repository)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name_or_path = resolve_model_path(name_or_path)
    dev = _device(device)
    hub = {"revision": revision, "trust_remote_code": trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, **hub)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=pick_dtype(dtype, dev), **hub).to(dev)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    elif lora is not None and lora.r > 0:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    return model, tokenizer


class ModelError(ValueError):
    """A model argument names nothing that can be loaded; the message says what to pass instead."""


_STEP_DIR = re.compile(r"step-(\d+)")
# a hub id: "name" or "owner/name" (letters, digits, "-", "_", "."); "./x", "../x", "/x", "a/b/c" are paths
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?")
_TRUE = {"1", "on", "yes", "true"}


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()


def complete_checkpoints(ckdir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of the complete checkpoints in a run's ``checkpoints/`` (model/ and state.pt), oldest
    first."""
    if not ckdir.is_dir():
        return []
    found = []
    for p in ckdir.iterdir():
        m = _STEP_DIR.fullmatch(p.name)
        if m and (p / "state.pt").is_file() and (p / "model").is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(ckdir: Path) -> Path | None:
    """The checkpoint ``ckdir/latest`` names, else the highest complete one; None when there is none."""
    pointer = ckdir / "latest"
    done = complete_checkpoints(ckdir)
    if pointer.is_file():
        name = pointer.read_text().strip()
        if name in {p.name for _, p in done}:
            return ckdir / name
    return done[-1][1] if done else None


def model_folder(path: str | Path) -> Path:
    """The model folder a local folder stands for: itself (a ``config.json``, or a LoRA adapter's
    ``adapter_config.json``), its ``model/`` (a finished run, or one checkpoint), else its latest
    checkpoint's ``model/`` (a run still training). `ModelError` when it holds none of them."""
    p = Path(path)
    if not p.is_dir():
        raise ModelError(f"no such folder: {p.absolute()}; pass a model folder, a run folder or a checkpoint")
    if _is_model(p):
        return p
    if _is_model(p / "model"):
        return p / "model"
    ckpt = latest_checkpoint(p / "checkpoints")
    if ckpt is not None and _is_model(ckpt / "model"):
        return ckpt / "model"
    if (p / "config.yaml").is_file() or (p / "checkpoints").is_dir():
        raise ModelError(
            f"run folder {p} has no model yet (no model/, no checkpoint): train it until it saves one, "
            "or pass a model folder"
        )
    raise ModelError(
        f"{p} holds no model: pass a model folder (with config.json), a run folder or one of its checkpoints"
    )


def resolve_model_path(name_or_path: str | Path) -> str | Path:
    """What to load for a model argument: a local folder through `model_folder` (so a run folder stands for
    its model), else a hub id, accepted when the local hub cache has it or one quick probe of the hub
    (``$HF_ENDPOINT``, ``$RFT_HUB_TIMEOUT`` seconds, default 5) finds it; with ``HF_HUB_OFFLINE`` set, no
    probe. Raises `ModelError`, one line saying what to pass instead, before anything is written."""
    text = str(name_or_path)
    p = Path(text).expanduser()
    if p.is_dir():
        return model_folder(p)
    if p.exists():
        raise ModelError(f"model {text!r} is a file; pass a model folder, a run folder or a hub id")
    if isinstance(name_or_path, Path) or not _HUB_ID.fullmatch(text) or ".." in text:
        raise ModelError(
            f"no such model folder: {p.absolute()}; pass a model folder, a run folder or a hub id "
            "(e.g. Qwen/Qwen2.5-0.5B-Instruct)"
        )
    if _in_hub_cache(text):
        return text
    where = f"model {text!r} is not a local folder ({p.absolute()} does not exist)"
    fix = (
        "pass a local model folder or run folder instead (recipes: --set model=PATH; commands: --model PATH)"
    )
    if any(
        os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    ):
        raise ModelError(f"{where} nor in the Hugging Face cache, and HF_HUB_OFFLINE is set; {fix}")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    problem = _probe_hub(endpoint, text, float(os.environ.get("RFT_HUB_TIMEOUT", "5")))
    if problem is not None:
        raise ModelError(f"{where}, and {problem}; {fix}")
    return text


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(
        isinstance(try_to_load_from_cache(repo_id, name), str)
        for name in ("config.json", "adapter_config.json")
    )


@functools.cache
def _probe_hub(endpoint: str, repo_id: str, timeout: float) -> str | None:
    """None when the hub at `endpoint` knows `repo_id`, else what went wrong (one request, no retries)."""
    from huggingface_hub import get_token

    request = urllib.request.Request(f"{endpoint}/api/models/{repo_id}")
    token = get_token()
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as e:
        if e.code in (401, 403, 404):
            return (
                f"the Hugging Face hub ({endpoint}) has no model by that name (HTTP {e.code}; "
                "a private or gated model needs `hf auth login`)"
            )
        return f"the Hugging Face hub ({endpoint}) answered HTTP {e.code} when asked for it"
    except (urllib.error.URLError, OSError) as e:  # no network, DNS, refused, timed out
        return f"the Hugging Face hub ({endpoint}) could not be reached to look it up ({getattr(e, 'reason', e)})"


def adamw(params: Any, **options: Any) -> torch.optim.AdamW:
    """`torch.optim.AdamW(params, **options)`, fused where every parameter is a CPU or CUDA float tensor
    (one kernel per step, as TRL's default `adamw_torch_fused`). The single-tensor loop that is torch's
    default on CPU makes temporaries the size of each parameter: at Qwen2.5-0.5B's 136M-parameter embedding
    its step added 2.1 GiB to the peak RSS where the fused step adds its 1.1 GiB of moments
    (bench/real_shapes.py). Same update up to float rounding."""
    groups = list(params)
    tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in tensors)
    extra: dict[str, Any] = {"fused": True} if fused and tensors else {}
    return torch.optim.AdamW(groups, **options, **extra)


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return params
