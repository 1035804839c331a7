"Multi-process scoring (rank/world) and DDP training, 2 CPU processes with torchrun and gloo."
import json, os, subprocess, sys
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

def test_ddp_training_two_ranks(tmp_path):
    torchrun('train', tmp_path)
    w0, w1 = (torch.load(tmp_path/f'adapter-rank{r}.pt') for r in (0, 1))
    assert w0.keys() == w1.keys() and len(w0) > 0
    for n in w0: assert torch.equal(w0[n], w1[n]), n
    res = json.loads((tmp_path/'train.json').read_text())
    assert len(res['losses']) == 3 and all(np.isfinite(res['losses']))
    assert any(not torch.equal(w0[n], torch.zeros_like(w0[n])) for n in w0 if 'lora_B' in n)   # training moved B
