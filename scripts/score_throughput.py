"""Scoring throughput of tokenclean on the packaged model: tokens/s for the base and the reference.

Usage: OMP_NUM_THREADS=1 .venv/bin/python scripts/score_throughput.py [--samples 240] [--max-len 512] [--threads 1]
The reference is a LoRA adapter (r=64, seeded non-zero B) on the same weights, scored with the
adapter on; the base is the same model with the adapter off. Nothing is cached between the runs.
"""
import argparse, tempfile, time
import torch
from tokenclean.core import set_threads
from tokenclean.models import load_model, load_tokenizer, add_lora
from tokenclean.pools import load_pool
from tokenclean.tokenizing import tokenize_pool
from tokenclean.scoring import token_losses, join_scores

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--samples', type=int, default=240); p.add_argument('--max-len', type=int, default=512)
p.add_argument('--threads', type=int, default=1); p.add_argument('--max-tokens', type=int, default=8192)
a = p.parse_args()
set_threads(a.threads)
tok = load_tokenizer('smollm2-135m-instruct')
tp = tokenize_pool(tok, load_pool('default', limit=a.samples), a.max_len)
m = add_lora(load_model('smollm2-135m-instruct', device='cpu'), r=64, alpha=16, dropout=0.0)
with torch.no_grad():
    g = torch.Generator().manual_seed(0)
    for n, w in m.named_parameters():
        if 'lora_B' in n: w.copy_(torch.randn(w.shape, generator=g) * 0.01)
n_tok = sum(len(r['input_ids']) for r in tp.rows)
root = tempfile.mkdtemp(); res = {}
for name, adapter in (('base', False), ('reference', True)):
    t0, c0 = time.perf_counter(), time.process_time()
    res[name] = token_losses(m, tp, root, adapter=adapter, pad_id=tok.pad_token_id, max_tokens=a.max_tokens, progress=False).read()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f'{name:9s}: {n_tok:,} tokens in {wall:.1f} s wall ({n_tok / wall:.0f} tokens/s; {n_tok / cpu * a.threads:.0f} tokens per CPU-s x threads)')
sc = join_scores(tp, res['base'], res['reference'])
print(f'{len(tp)} samples, {n_tok:,} tokens, {len(sc):,} scored response tokens, {a.threads} thread(s)')
