"Multi-process scoring (rank/world) and data-parallel training with tokenclean's `train`, 2 CPU processes (torchrun, gloo)."
import os, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import mp_score

ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1',
           TOKENIZERS_PARALLELISM='false')

def torchrun(mode:str, out:Path):
    torchrun = Path(sys.executable).with_name('torchrun')
    cmd = ([str(torchrun)] if torchrun.exists() else [sys.executable, '-m', 'torch.distributed.run'])
    cmd += ['--standalone', '--nproc_per_node', '2', str(HERE/'mp_score.py'), mode, str(out)]
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f'torchrun {mode} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}'
    return p

def test_multiprocess_scoring_matches_single(tmp_path):
    from tokenclean.models import load_model, load_tokenizer
    from tokenclean.scoring import token_losses, LossStore
    torchrun('score', tmp_path/'mp')
    tok = load_tokenizer('tiny-random')
    model = load_model('tiny-random', device='cpu', seed=0)
    sp = token_losses(model, mp_score.pool(tok), tmp_path/'sp', pad_id=tok.pad_token_id,
                      shard_size=mp_score.SHARD, progress=False)
    stores = list((tmp_path/'mp').glob('losses-*'))
    assert [s.name for s in stores] == [sp.path.name]                       # one store, the same cache key
    assert len(list(stores[0].glob('shard-*.parquet'))) == mp_score.N_SAMPLES // mp_score.SHARD
    single, merged = sp.read(), LossStore(stores[0]).read()
    assert len(single) == mp_score.N_SAMPLES and merged.keys() == single.keys()
    for k, (pos, token, loss) in single.items():
        mp, mt, ml = merged[k]
        assert np.array_equal(pos, mp) and np.array_equal(token, mt) and np.array_equal(loss, ml), k

def test_data_parallel_training_with_all_masked_micro_batches(tmp_path):
    "Two ranks, micro-batches that keep nothing on one rank (and empty ones): it finishes, ranks agree, = one process."
    from tokenclean.models import load_tokenizer
    from tokenclean.training import TrainConfig, train
    torchrun('train', tmp_path)
    r0, r1 = (torch.load(tmp_path/f'rank{r}.pt') for r in (0, 1))
    assert r0['weights'].keys() == r1['weights'].keys() and len(r0['weights']) > 0
    for n in r0['weights']: assert torch.equal(r0['weights'][n], r1['weights'][n]), n   # the ranks stay in step
    assert r0['skipped'] + r1['skipped'] > 0                                          # all-masked micro-batches were met
    tok = load_tokenizer('tiny-random')
    m = mp_score.lora_model()
    h = train(m, mp_score.masked_rows(tok), TrainConfig(**mp_score.TRAIN), tok.pad_token_id, progress=False)
    assert [l is None for l in h['history']] == [l is None for l in r0['history']]    # the same steps skipped
    np.testing.assert_allclose([l for l in h['history'] if l is not None], [l for l in r0['history'] if l is not None],
                               rtol=1e-5)
    for n, p in m.named_parameters():
        if p.requires_grad: torch.testing.assert_close(p.detach(), r0['weights'][n], atol=1e-5, rtol=1e-4)
    assert (tmp_path/'train.json').exists() and (tmp_path/'adapter').exists()           # written once, by rank 0
