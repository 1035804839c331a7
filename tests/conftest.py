"Shared settings for the pytest layer: one thread, no Hub, and helpers to run the installed CLI."
import os, subprocess, sys
from pathlib import Path
import pytest

ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1',
           TOKENIZERS_PARALLELISM='false', PYTHONUNBUFFERED='1')
os.environ.update(ENV)
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

def run(args, cwd=None, check=True, timeout=900, env=None, **kw):
    "Run a command with the test environment (plus `env`); returns the CompletedProcess."
    p = subprocess.run(args, cwd=cwd, env={**os.environ, **ENV, **(env or {})}, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0: raise AssertionError(f"{args} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p

@pytest.fixture
def tokenclean():
    "Path of the installed `tokenclean` console script."
    exe = BIN/'tokenclean'
    assert exe.exists(), f'tokenclean is not installed in {BIN}'
    return str(exe)

TINY = """\
model: tiny-random
pool: default
pool_limit: 40
warmup_limit: 16
heldout: 8
max_len: 128
rounds: 2
seeds: [1, 2]
lora_r: 4
lora_alpha: 8
lora_dropout: 0.0
quant: null
progress: false
shard_size: 16
train: {lr: 0.001, batch_size: 8, micro_batch: 8, warmup_ratio: 0.0}
"""

@pytest.fixture
def tiny_config(tmp_path):
    "A YAML config of a tiny study (random 2-layer Llama, real tokenizer and data) writing under tmp_path."
    p = tmp_path/'tiny.yaml'; p.write_text(TINY + f"out: {tmp_path/'runs'}\n")
    return p
