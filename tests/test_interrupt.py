"Kill scoring and training with SIGKILL half-way; the resumed run equals an uninterrupted one."
import os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pytest, torch
from conftest import ENV, run

JOB = str(Path(__file__).parent/'interrupt_job.py')

def kill_when(cmd, ready, timeout=300):
    "Start `cmd`, SIGKILL it as soon as `ready()` is true; fail if it finished first."
    p = subprocess.Popen(cmd, env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while not ready():
        assert p.poll() is None, f'the job ended before it could be killed: {p.stderr.read().decode()[-2000:]}'
        assert time.time() - t0 < timeout, 'job never reached the kill point'
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL

def test_scoring_resumes_after_sigkill(tmp_path):
    killed, clean = tmp_path/'killed', tmp_path/'clean'
    kill_when([sys.executable, JOB, 'score', str(killed)], lambda: len(list(killed.glob('losses-*/shard-00003.parquet'))) > 0)
    store = next(killed.glob('losses-*'))
    assert not (store/'meta.json').exists()               # not marked complete
    n_before = len(list(store.glob('shard-*.parquet')))
    assert 4 <= n_before < 12
    from tokenclean.scoring import LossStore
    resumed = Path(run([sys.executable, JOB, 'score', str(killed)]).stdout.strip().splitlines()[-1])
    fresh = Path(run([sys.executable, JOB, 'score', str(clean)]).stdout.strip().splitlines()[-1])
    assert resumed.name == fresh.name
    a, b = LossStore(resumed).read(), LossStore(fresh).read()
    assert a.keys() == b.keys() and len(a) == 24
    for k in b:
        for x, y in zip(a[k], b[k]): np.testing.assert_array_equal(x, y)
    assert not list(store.glob('.*.tmp'))                  # no half-written file left

def test_training_resumes_after_sigkill(tmp_path):
    killed, clean = tmp_path/'killed', tmp_path/'clean'
    kill_when([sys.executable, JOB, 'train', str(killed)], lambda: (killed/'checkpoint.pt').exists())
    assert not (killed/'adapter').exists()
    run([sys.executable, JOB, 'train', str(killed)]); run([sys.executable, JOB, 'train', str(clean)])
    from safetensors.torch import load_file
    a, b = load_file(killed/'adapter'/'adapter_model.safetensors'), load_file(clean/'adapter'/'adapter_model.safetensors')
    assert a.keys() == b.keys() and len(a) > 0
    for k in a: torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
