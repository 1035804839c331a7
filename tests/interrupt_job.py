"A scoring or training job for the kill-and-resume tests: python interrupt_job.py {score|train} OUT"
import sys
from pathlib import Path
import torch
from tokenclean.core import set_threads
from tokenclean.models import load_model, load_tokenizer, add_lora
from tokenclean.pools import load_pool
from tokenclean.tokenizing import tokenize_pool
from tokenclean.scoring import token_losses
from tokenclean.training import TrainConfig, train

set_threads(1)
mode, out = sys.argv[1], Path(sys.argv[2])
tok = load_tokenizer('smollm2-135m-instruct')
tp = tokenize_pool(tok, load_pool('default', limit=40), max_len=128, verbose=False)   # 24 samples survive
torch.manual_seed(0)
model = add_lora(load_model('smollm2-135m-instruct', device='cpu'), r=8, alpha=16, dropout=0.1)
if mode == 'score':
    with torch.no_grad():
        for n, p in model.named_parameters():
            if 'lora_B' in n: p.normal_(0, 0.02, generator=torch.Generator().manual_seed(len(n)))
    store = token_losses(model, tp, out, adapter=True, pad_id=tok.pad_token_id, shard_size=2, progress=False)
    print(store.path)
else:
    cfg = TrainConfig(lr=1e-3, batch_size=2, micro_batch=2, epochs=1, save_every=1, seed=3, warmup_ratio=0.0)
    train(model, tp.rows[:16], cfg, pad_id=tok.pad_token_id, out=out, progress=False)
    print(out/'adapter')
