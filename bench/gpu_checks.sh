#!/usr/bin/env bash
# The GPU checks, as run on a lent GPU machine (one call of the device tool, from the repository root):
# tests/test_gpu.py (bf16 mixed precision, LoRA, async sampler, SFT on the GPU), bench/precision.py (float32 vs
# pure bf16 vs bf16-mixed GRPO) and bench/grpo_vs_trl.py --device cuda. That machine (Python 3.12, torch
# 2.11+cu130, transformers 5.17, peft, accelerate; no registry) gets the rest as wheels in .whl/, downloaded
# here with `pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64
# ...` for trl datasets dill multiprocess gymnasium farama-notifications pydantic pydantic-core annotated-types
# typing-inspection typing-extensions jsonschema jsonschema-specifications referencing rpds-py rapidfuzz nltk
# openai jiter sniffio defusedxml (rouge-score built with `pip wheel`); 13 MB. vllm's wheel (320 MB, built
# for another torch) cannot travel. Logs go to $OUT (default /tmp/rft-gpu).
set -u
OUT=${OUT:-/tmp/rft-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
pip_target() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$@"; }
if [ -d .whl ]; then pip_target .whl/*.whl || exit 1; fi
pip_target --no-build-isolation . || exit 1
export PYTHONPATH=/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -P -c "import torch, transformers, trl, peft, rft.rl.grpo, rft.sft_dpo; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, torch.cuda.get_device_name())" || exit 1
# -P: not the checkout's rft/ folder (the installed package maps rft.graders, rft.envs, ...)
timeout "${T_TESTS:-220}" python3 -P -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tee "$OUT/test_gpu.log" | tail -12
timeout "${T_PRECISION:-170}" python3 bench/precision.py --device cuda 2>&1 | tee "$OUT/precision.log" | tail -6
timeout "${T_TRL:-170}" python3 bench/grpo_vs_trl.py --device cuda --trl-micro 64 --rft 0:64 0:64:async 2>&1 | tee "$OUT/grpo_vs_trl.log" | tail -8
