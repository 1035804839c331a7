"""Multi-process scoring and DDP training on CPU (gloo), launched by `tests/test_multiprocess.py` with torchrun:

    torchrun --standalone --nproc_per_node 2 tests/mp_score.py score OUT_DIR   # token_losses(rank, world) into OUT_DIR
    torchrun --standalone --nproc_per_node 2 tests/mp_score.py train OUT_DIR   # a few DDP steps of a LoRA model
"""
import json, os, sys
import torch, torch.distributed as dist
from tokenclean.core import set_threads
from tokenclean.data import load_pool, tokenize_pool
from tokenclean.models import load_model, load_tokenizer, add_lora
from tokenclean.scoring import token_losses, token_nll, collate

N_SAMPLES, MAX_LEN, SHARD = 12, 256, 2

def pool(tok): return tokenize_pool(tok, load_pool('default', limit=N_SAMPLES), MAX_LEN, verbose=False)

def score(out:str, rank:int, world:int):
    "Score the slice with `tiny-random` (seed 0 in every rank); each rank writes its shards."
    tok = load_tokenizer('tiny-random')
    model = load_model('tiny-random', device='cpu', seed=0)
    st = token_losses(model, pool(tok), out, pad_id=tok.pad_token_id, shard_size=SHARD, progress=False, rank=rank, world=world)
    if rank == 0: print('STORE', st.path)

class NLL(torch.nn.Module):
    "Per-token NLL at trained positions (`token_nll`) as a module, so DDP's forward and hooks wrap it."
    def __init__(self, model): super().__init__(); self.model = model
    def forward(self, **batch): return token_nll(self.model, **batch)

def train(out:str, rank:int, world:int, steps:int=3, per_rank:int=2):
    "A few DDP steps; the loss is the mean over the trained tokens of the whole (all-rank) batch."
    from torch.nn.parallel import DistributedDataParallel as DDP
    tok = load_tokenizer('tiny-random')
    rows = pool(tok).rows
    torch.manual_seed(0)
    model = add_lora(load_model('tiny-random', device='cpu', seed=0), r=8, alpha=16, dropout=0.1)
    torch.manual_seed(1 + rank)                                # different dropout masks per rank, on purpose
    ddp = DDP(NLL(model)); ddp.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for s in range(steps):
        step_rows = [rows[(s * world * per_rank + i) % len(rows)] for i in range(world * per_rank)]
        mine = step_rows[rank * per_rank:(rank + 1) * per_rank]
        total = sum(int((r['labels'][1:] != -100).sum()) for r in step_rows)   # tokens of the global batch
        nll = ddp(**collate(mine, tok.pad_token_id))
        loss = nll.sum() / total * world                        # DDP averages gradients over ranks
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        t = torch.tensor([nll.sum().item()]); dist.all_reduce(t); losses.append(t.item() / total)
    weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    torch.save(weights, os.path.join(out, f'adapter-rank{rank}.pt'))
    if rank == 0: json.dump(dict(losses=losses, n_params=len(weights)), open(os.path.join(out, 'train.json'), 'w'))

if __name__ == '__main__':
    mode, out = sys.argv[1], sys.argv[2]
    set_threads(1)
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    (score if mode == 'score' else train)(out, rank, world)
    dist.barrier(); dist.destroy_process_group()
