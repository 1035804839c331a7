"""Each token-rule method (`dft`, `entropy`, `prob_threshold`, `online`) trains through the study's train stage on a tiny
study (random 2-layer Llama, real tokenizer and data, one optimizer step): its loss is finite, its token weights are
those of its rule, and a weighting rule's loss differs from full-token training's."""
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
    st = Study(make_config(TINY, methods=['full', 'dft', 'entropy', 'prob_threshold', 'online'],
                           out=str(tmp_path_factory.mktemp('runs'))))
    sc = score_pool(st)
    return st, sc, train_method(st, 'full', 1, sc)

@pytest.mark.parametrize('method', ['dft', 'entropy', 'prob_threshold', 'online'])
def test_method_trains_one_step(study, method):
    from tokenclean.core import load_json
    from tokenclean.stages import train_method
    st, sc, full = study
    r = train_method(st, method, 1, sc)
    n = len(sc)
    assert r['steps'] == 1 and r['skipped_steps'] == 0 and r['trained_tokens'] == n == full['trained_tokens']
    assert math.isfinite(r['final_loss'])
    cfg = load_json(st.run_dir(method, 1)/'train.json')['config']
    assert cfg['rule'] == method and cfg['rule_k'] == st.cfg.k
    w = r['token_weight']
    if method == 'online': assert w == math.floor(n * st.cfg.k)                 # the top k of base − current
    elif method == 'prob_threshold': assert w == 0 and r['final_loss'] == 0        # a random model: every p < τ = 0.1
    else: assert 0 < w < n                                                          # weights in (0, 1)
    if method != 'prob_threshold': assert r['final_loss'] != full['final_loss']     # other weights, another loss
    assert full['token_weight'] == n
