"""The tiny study under `accelerate launch` with 2 CPU processes (gloo) against 1 process.

accelerate 1.15's `--cpu` launcher starts one process (several CPU processes need `mpirun` there), so the test launches
with `--multi_gpu --num_processes 2` on a machine without GPUs: accelerate's torchrun path starts 2 processes and
tokenclean's `Accelerator(cpu=True)` joins them with gloo; on GPUs the same command uses NCCL.
"""
import os, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch

HERE = Path(__file__).parent
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1',
           TOKENIZERS_PARALLELISM='false')
TINY = """\
model: tiny-random
pool: default
pool_limit: 24
warmup_limit: 8
heldout: 4
max_len: 96
rounds: 1
methods: [fixed, self_evolving]
seeds: [1]
lora_r: 4
lora_alpha: 8
lora_dropout: 0.0
quant: null
progress: false
shard_size: 4
train: {lr: 0.001, batch_size: 8, micro_batch: 2, warmup_ratio: 0.0, shuffle: false}
eval_tasks: [boolq_offline]
eval_limit: 2
"""
TOL = dict(atol=1e-5, rtol=1e-4)   # data parallel sums the same gradients in another order

def launch(out:Path, cfg:Path):
    acc = Path(sys.executable).with_name('accelerate')
    cmd = [str(acc), 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no',
           '--dynamo_backend', 'no', '--main_process_port', '29517', str(HERE/'mp_score.py'), 'study', str(out), str(cfg)]
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f'accelerate launch failed:\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}'

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "(2-process study folder, 1-process study folder that reused only the 2-process warm-up reference)."
    from tokenclean.pipelines import load_config, run_study, Study
    tmp = tmp_path_factory.mktemp('acc'); cfg = tmp/'tiny.yaml'; cfg.write_text(TINY)
    launch(tmp/'two', cfg)
    shutil.copytree(tmp/'two', tmp/'one')
    root1 = Study(load_config(cfg, out=str(tmp/'one'))).root
    for p in root1.iterdir():                       # keep the reference: scores then come from the same two models
        if not p.name.startswith('reference-'): shutil.rmtree(p) if p.is_dir() else p.unlink()
    run_study(load_config(cfg, out=str(tmp/'one')))
    root2 = Study(load_config(cfg, out=str(tmp/'two'))).root
    return root2, root1

def test_every_file_written_once(runs):
    two, _ = runs
    assert not list(two.rglob('*.tmp')) and not list(two.rglob('.*.tmp-*'))
    runs_ = sorted(p.name.split('-')[0] for p in two.iterdir() if p.is_dir() and (p/'results.json').exists())
    assert runs_ == ['fixed', 'reference', 'self_evolving']
    for d in two.iterdir():
        if (d/'results.json').exists(): assert len(list((d/'lm_eval').rglob('results_*.json'))) == 1, d   # evaluated once
    stores = list((two/'cache').glob('losses-*'))
    assert stores and all((s/'meta.json').exists() for s in stores)
    assert max(len(list(s.glob('shard-*.parquet'))) for s in stores) > 1                 # shards of both ranks

def test_merged_scores_equal_one_process(runs):
    from tokenclean.scoring import load_scores
    (s2,), (s1,) = (list((r/'scores').glob('scores-*.parquet')) for r in runs)
    a, b = load_scores(s2), load_scores(s1)
    assert a.ids == b.ids and np.array_equal(a.pos, b.pos) and np.array_equal(a.token, b.token)
    assert np.array_equal(a.base, b.base) and np.array_equal(a.ref, b.ref)       # exactly

def test_selection_identical_and_adapter_close(runs):
    from safetensors.torch import load_file
    (f2,), (f1,) = (list(r.glob('fixed-*')) for r in runs)
    assert np.array_equal(np.load(f2/'selection'/'keep.npy'), np.load(f1/'selection'/'keep.npy'))
    w2, w1 = (load_file(f/'adapter'/'adapter_model.safetensors') for f in (f2, f1))
    assert w2.keys() == w1.keys()
    for n in w2: torch.testing.assert_close(w2[n], w1[n], **TOL)
    (e2,), (e1,) = (list(r.glob('self_evolving-*')) for r in runs)
    v2, v1 = (load_file(f/'adapter'/'adapter_model.safetensors') for f in (e2, e1))
    for n in v2: torch.testing.assert_close(v2[n], v1[n], **TOL)
