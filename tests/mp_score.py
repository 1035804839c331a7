"""Multi-process scoring, training and whole studies on CPU (gloo), launched by `tests/test_multiprocess.py` (torchrun)
and `tests/test_accelerate.py` (accelerate):

    torchrun --standalone --nproc_per_node 2 tests/mp_score.py score OUT_DIR   # token_losses(rank, world) into OUT_DIR
    torchrun --standalone --nproc_per_node 2 tests/mp_score.py train OUT_DIR   # tokenclean's train(), data parallel
    accelerate launch --multi_gpu --num_processes 2 tests/mp_score.py study OUT_DIR CONFIG   # run_study, once
"""
import os, sys
import numpy as np, torch
from tokenclean.core import set_threads
from tokenclean.pools import load_pool
from tokenclean.tokenizing import tokenize_pool
from tokenclean.models import load_model, load_tokenizer, add_lora, processes

N_SAMPLES, MAX_LEN, SHARD = 12, 256, 2

def pool(tok): return tokenize_pool(tok, load_pool('default', limit=N_SAMPLES), MAX_LEN, verbose=False)

def score(out:str, rank:int, world:int):
    "Score the slice with `tiny-random` (seed 0 in every rank); each rank writes its shards (`process_losses`)."
    from tokenclean.scoring import process_losses
    tok = load_tokenizer('tiny-random')
    model = load_model('tiny-random', device='cpu', seed=0)
    st = process_losses(model, pool(tok), out, pad_id=tok.pad_token_id, shard_size=SHARD, progress=False)
    if rank == 0: print('STORE', st.path)

def masked_rows(tok)->list:
    "Rows where every sample but each fourth is fully rejected: some micro-batches of a rank keep nothing."
    return [r if i % 4 == 0 else dict(r, labels=np.full_like(r['labels'], -100)) for i, r in enumerate(pool(tok).rows)]

TRAIN = dict(lr=1e-2, batch_size=3, micro_batch=1, seed=0, shuffle=False, warmup_ratio=0.0, save_every=0)

def lora_model():
    torch.manual_seed(0)
    return add_lora(load_model('tiny-random', device='cpu', seed=0), r=8, alpha=16, dropout=0.0)

def train(out:str, rank:int, world:int):
    "tokenclean's `train` on rows with all-masked micro-batches; each rank saves its weights."
    from tokenclean.training import TrainConfig, train
    tok = load_tokenizer('tiny-random')
    model = lora_model()
    h = train(model, masked_rows(tok), TrainConfig(**TRAIN), tok.pad_token_id, out=out, progress=False)
    weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    torch.save(dict(weights=weights, history=h['history'], skipped=h['skipped_micro_batches']),
               os.path.join(out, f'rank{rank}.pt'))

def study(out:str, config:str):
    "The whole study of `config` into `out`; then, as the CLI's report does, the main process alone reads the scores."
    from tokenclean.models import is_main
    from tokenclean.pipelines import load_config, run_study, score_pool, Study
    cfg = load_config(config, out=out)
    run_study(cfg)
    if is_main(): print('SCORED', len(score_pool(Study(cfg))))   # finished stages need no other process

if __name__ == '__main__':
    mode, out = sys.argv[1], sys.argv[2]
    set_threads(1)
    rank, world = processes()                      # starts the process group through accelerate (gloo on CPU)
    assert world > 1, 'launch with torchrun or accelerate launch'
    if mode == 'study': study(out, sys.argv[3])
    else: (score if mode == 'score' else train)(out, rank, world)
