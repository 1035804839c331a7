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

def one_process_beside(tmp:Path, cfg:Path)->tuple:
    "(root of the study in tmp/two, root of a 1-process study in tmp/one that reused only its warm-up reference)."
    from tokenclean.pipelines import load_config, run_study, Study
    shutil.copytree(tmp/'two', tmp/'one')
    root1 = Study(load_config(cfg, out=str(tmp/'one'))).root
    for p in root1.iterdir():                       # keep the reference: scores then come from the same two models
        if not p.name.startswith('reference-'): shutil.rmtree(p) if p.is_dir() else p.unlink()
    run_study(load_config(cfg, out=str(tmp/'one')))
    return Study(load_config(cfg, out=str(tmp/'two'))).root, root1

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "(2-process study folder, 1-process study folder that reused only the 2-process warm-up reference)."
    tmp = tmp_path_factory.mktemp('acc'); cfg = tmp/'tiny.yaml'; cfg.write_text(TINY)
    launch(tmp/'two', cfg)
    return one_process_beside(tmp, cfg)

def assert_every_file_written_once(two:Path):
    assert not list(two.rglob('*.tmp')) and not list(two.rglob('.*.tmp-*'))
    runs_ = sorted(p.name.split('-')[0] for p in two.iterdir() if p.is_dir() and (p/'results.json').exists())
    assert runs_ == ['fixed', 'reference', 'self_evolving']
    for d in two.iterdir():
        if (d/'results.json').exists(): assert len(list((d/'lm_eval').rglob('results_*.json'))) == 1, d   # evaluated once
    stores = list((two/'cache').glob('losses-*'))
    assert stores and all((s/'meta.json').exists() for s in stores)
    assert max(len(list(s.glob('shard-*.parquet'))) for s in stores) > 1                 # shards of both ranks

def assert_same_scores(two:Path, one:Path):
    from tokenclean.scoring import load_scores
    (s2,), (s1,) = (list((r/'scores').glob('scores-*.parquet')) for r in (two, one))
    a, b = load_scores(s2), load_scores(s1)
    assert a.ids == b.ids and np.array_equal(a.pos, b.pos) and np.array_equal(a.token, b.token)
    assert np.array_equal(a.base, b.base) and np.array_equal(a.ref, b.ref)       # exactly

def assert_same_selection_close_adapters(two:Path, one:Path)->float:
    "The fixed method's kept tokens are identical; every adapter is within `TOL`; returns the largest difference."
    from safetensors.torch import load_file
    (f2,), (f1,) = (list(r.glob('fixed-*')) for r in (two, one))
    assert np.array_equal(np.load(f2/'selection'/'keep.npy'), np.load(f1/'selection'/'keep.npy'))
    worst = 0.
    for method in ('fixed', 'self_evolving'):
        (d2,), (d1,) = (list(r.glob(f'{method}-*')) for r in (two, one))
        w2, w1 = (load_file(d/'adapter'/'adapter_model.safetensors') for d in (d2, d1))
        assert w2.keys() == w1.keys() and w2
        for n in w2: torch.testing.assert_close(w2[n], w1[n], **TOL)
        worst = max(worst, *((w2[n] - w1[n]).abs().max().item() for n in w2))
    return worst

def test_every_file_written_once(runs): assert_every_file_written_once(runs[0])

def test_merged_scores_equal_one_process(runs): assert_same_scores(*runs)

def test_selection_identical_and_adapter_close(runs):
    print('max |2 processes - 1 process| over LoRA weights:', assert_same_selection_close_adapters(*runs))
