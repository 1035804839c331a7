"""Each token-rule method (`dft`, `entropy`, `prob_threshold`, `online`, `sstoken`) trains through the study's train
stage on a tiny study (random 2-layer Llama, real tokenizer and data, one optimizer step): its loss is finite, its
token weights are those of its rule, and a weighting rule's loss differs from full-token training's; `online` on two
processes (torchrun, gloo) takes each step's top k over both and trains as one process does, and so does `sstoken`
(per sample, so each process decides alone)."""
import math
import pytest

TINY = dict(model='tiny-random', pool='default', pool_limit=12, warmup_limit=8, heldout=0, max_len=96, lora_r=4,
            lora_alpha=8, lora_dropout=0.0, quant=None, progress=False, shard_size=16, seeds=[1],
            train=dict(lr=1e-3, batch_size=16, micro_batch=8, warmup_ratio=0.0))

@pytest.fixture(scope='module')
def study(tmp_path_factory):
    "(the tiny study, its pool's scores, the `full` run's results)."
    from tokenclean.config import make_config
    from tokenclean.stages import score_pool, train_method
    from tokenclean.study import Study
    st = Study(make_config(TINY, methods=['full', 'dft', 'entropy', 'prob_threshold', 'online', 'sstoken'],
                           out=str(tmp_path_factory.mktemp('runs'))))
    sc = score_pool(st)
    return st, sc, train_method(st, 'full', 1, sc)

@pytest.mark.parametrize('method', ['dft', 'entropy', 'prob_threshold', 'online', 'sstoken'])
def test_method_trains_one_step(study, method):
    import numpy as np
    from tokenclean.core import load_json
    from tokenclean.stages import train_method
    from tokenclean.token_weights import sstoken_kept
    st, sc, full = study
    r = train_method(st, method, 1, sc)
    n = len(sc)
    assert r['steps'] == 1 and r['skipped_steps'] == 0 and r['trained_tokens'] == n == full['trained_tokens']
    assert math.isfinite(r['final_loss'])
    cfg = load_json(st.run_dir(method, 1)/'train.json')['config']
    assert cfg['rule'] == method and cfg['rule_k'] == st.cfg.k
    w = r['token_weight']
    if method == 'online': assert w == math.floor(n * st.cfg.k)                 # the top k of base − current
    elif method == 'sstoken': assert w == sstoken_kept(np.diff(sc.offsets), st.cfg.k) < n   # ceil(k·n) a sample
    elif method == 'prob_threshold': assert w == 0 and r['final_loss'] == 0        # a random model: every p < τ = 0.1
    else: assert 0 < w < n                                                          # weights in (0, 1)
    if method != 'prob_threshold': assert r['final_loss'] != full['final_loss']     # other weights, another loss
    assert full['token_weight'] == n

def base_rows(tok):
    "`mp_score`'s rows (every fourth sample kept, the rest fully masked) with seeded random stored base losses."
    import numpy as np
    import mp_score
    rng = np.random.default_rng(0)
    return [dict(r, base_loss=rng.normal(3, 1, len(r['labels'])).astype(np.float32)) for r in mp_score.pool(tok).rows]

RULE = dict(online=dict(rule='online', rule_k=0.5), sstoken=dict(rule='sstoken', rule_k=0.5))

def rule_job(out:str, rank:int, rule:str):
    "One rank of data-parallel training with `rule` (torchrun): it saves its weights and history."
    import os, torch
    import mp_score
    from tokenclean.models import load_tokenizer
    from tokenclean.training import TrainConfig, train
    tok = load_tokenizer('tiny-random')
    model = mp_score.lora_model()
    h = train(model, base_rows(tok), TrainConfig(**mp_score.TRAIN, **RULE[rule]), tok.pad_token_id, progress=False)
    torch.save(dict(weights={n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad},
                    history=h['history'], token_weight=h['token_weight']), os.path.join(out, f'rank{rank}.pt'))

@pytest.mark.parametrize('rule', ['online', 'sstoken'])
def test_rule_two_processes_agree(tmp_path, rule):
    "Two ranks (torchrun, gloo) keep the tokens one process keeps (`online`: the step's top k over both ranks)."
    import torch
    import mp_score
    from tokenclean.models import load_tokenizer
    from tokenclean.training import TrainConfig, train
    torchrun(f'train-{rule}', tmp_path)
    r0, r1 = (torch.load(tmp_path/f'rank{r}.pt') for r in (0, 1))
    for n in r0['weights']: assert torch.equal(r0['weights'][n], r1['weights'][n]), n
    tok = load_tokenizer('tiny-random')
    m = mp_score.lora_model()
    h = train(m, base_rows(tok), TrainConfig(**mp_score.TRAIN, **RULE[rule]), tok.pad_token_id, progress=False)
    assert h['token_weight'] == r0['token_weight'] == r1['token_weight'] > 0      # the same tokens kept in every step
    assert [l is None for l in h['history']] == [l is None for l in r0['history']]
    torch.testing.assert_close([l for l in h['history'] if l is not None], [l for l in r0['history'] if l is not None],
                               rtol=1e-5, atol=0)
    for n, q in m.named_parameters():
        if q.requires_grad:   # sstoken: the same tokens (the losses agree to 1e-5), Adam at lr 1e-2 rounds one weight
            torch.testing.assert_close(q.detach(), r0['weights'][n], atol=1e-5 if rule == 'online' else 1e-4, rtol=1e-4)

def scores_of(rank:int):
    "Rank `rank`'s scores in the gather test: a length of its own, ties inside and across ranks."
    import torch
    g = torch.Generator().manual_seed(rank)
    return torch.cat([torch.randint(0, 4, (5 + 3 * rank,), generator=g).float(), torch.randn(4, generator=g)])

def gather_job(out:str, rank:int):
    "`keep_across_processes` on each rank's scores; each rank saves its keep mask."
    import os, torch
    from tokenclean.trl_loss import keep_across_processes
    torch.save(keep_across_processes(scores_of(rank), 0.5), os.path.join(out, f'keep{rank}.pt'))

def torchrun(mode:str, out):
    "Run this file's `mode` job on 2 processes (torchrun, gloo)."
    import os, subprocess, sys
    from pathlib import Path
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1',
               TOKENIZERS_PARALLELISM='false', PYTHONPATH=str(Path(__file__).parent))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', __file__, mode,
           str(out)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f'torchrun failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}'

def test_trl_online_threshold_agrees_across_processes(tmp_path):
    "The TRL loss's `online` keeps, on each of 2 processes, its part of the top k of both processes' scores."
    import torch
    from tokenclean.selection import top_k_mask
    torchrun('gather', tmp_path)
    both = torch.cat([torch.load(tmp_path/f'keep{r}.pt') for r in (0, 1)])
    one = top_k_mask(torch.cat([scores_of(0), scores_of(1)]).numpy(), 0.5)
    assert both.bool().tolist() == one.tolist() and 0 < both.sum() < len(both)

if __name__ == '__main__':
    import sys
    sys.path.insert(0, str(__import__('pathlib').Path(__file__).parent))
    from tokenclean.core import set_threads
    from tokenclean.models import processes
    set_threads(1)
    rank, world = processes()
    assert world > 1, 'launch with torchrun'
    if sys.argv[1].startswith('train-'): rule_job(sys.argv[2], rank, sys.argv[1][len('train-'):])
    else: gather_job(sys.argv[2], rank)
