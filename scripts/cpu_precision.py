"""bf16 autocast against fp32 on this CPU, scoring and training in one run (under 3 minutes on one thread).

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python scripts/cpu_precision.py [--json OUT.json]

The packaged SmolLM2-135M is the base. A LoRA reference is trained on warm-up chats from the same initial
adapter in each precision (tokens/s, final loss), then the default pool is scored with (base, reference) in each
precision (tokens/s) and the global top-60% kept sets are compared (Jaccard): fp32 end to end against bf16 end to
end, and the same fp32-trained reference scored in the two precisions. bf16 is worth being the CPU default only if
it is faster in both stages and agrees: Jaccard >= 0.95 and final losses within 1%.
"""
import argparse, contextlib, json, time
import numpy as np, torch
from tokenclean.core import set_threads
from tokenclean.data import load_pool, tokenize_pool
from tokenclean.models import load_model, load_tokenizer, add_lora, adapter_off, autocast
from tokenclean.scoring import collate, token_nll, length_batches
from tokenclean.selection import top_k_mask
from tokenclean.training import TrainConfig, train

def losses(model, rows, pad_id, precision, adapter=True):
    "Per-token losses of `rows` (concatenated in row order) and tokens/s."
    out, n, t0 = [None] * len(rows), 0, time.perf_counter()
    with torch.no_grad(), autocast('cpu', precision), (adapter_off(model) if not adapter else contextlib.nullcontext()):
        for b in length_batches([len(r['input_ids']) for r in rows], 2048):
            batch = collate([rows[i] for i in b], pad_id)
            counts = [int((rows[i]['labels'][1:] != -100).sum()) for i in b]
            for i, part in zip(b, torch.split(token_nll(model, **batch).float(), counts)): out[i] = part.numpy()
            n += int(batch['attention_mask'].sum())
    return np.concatenate(out), n / (time.perf_counter() - t0)

def jaccard(a, b): return float((a & b).sum() / (a | b).sum())

def main(out=None):
    set_threads(None)
    tok = load_tokenizer('smollm2-135m-instruct')
    warm = tokenize_pool(tok, load_pool('default:warmup', limit=16), 192, verbose=False).rows
    pool = tokenize_pool(tok, load_pool('default', limit=32), 192, verbose=False).rows
    res, refs = {}, {}
    for prec in ('fp32', 'bf16'):
        torch.manual_seed(0)
        m = add_lora(load_model('smollm2-135m-instruct', device='cpu'), r=8, alpha=16, dropout=0.0)
        cfg = TrainConfig(lr=1e-3, batch_size=8, micro_batch=4, epochs=1, warmup_ratio=0.0, seed=0, precision=prec, save_every=0)
        ntok, t0 = sum(len(r['input_ids']) for r in warm), time.perf_counter()
        h = train(m, warm, cfg, tok.pad_token_id, progress=False)
        res[f'train_tok_s_{prec}'] = ntok / (time.perf_counter() - t0)
        res[f'final_loss_{prec}'] = h['history'][-1]
        refs[prec] = m
    for prec in ('fp32', 'bf16'):
        base, tb = losses(refs['fp32'], pool, tok.pad_token_id, prec, adapter=False)
        ref, tr = losses(refs[prec], pool, tok.pad_token_id, prec)
        ref32, _ = losses(refs['fp32'], pool, tok.pad_token_id, prec)
        res[f'score_tok_s_{prec}'] = 2 / (1 / tb + 1 / tr)
        res[f'keep_{prec}'], res[f'keep_sameref_{prec}'] = top_k_mask(base - ref, 0.6), top_k_mask(base - ref32, 0.6)
        res[f'base_{prec}'] = base
    summary = dict(train_speedup=res['train_tok_s_bf16'] / res['train_tok_s_fp32'],
                   score_speedup=res['score_tok_s_bf16'] / res['score_tok_s_fp32'],
                   jaccard_end_to_end=jaccard(res['keep_fp32'], res['keep_bf16']),
                   jaccard_scoring_only=jaccard(res['keep_sameref_fp32'], res['keep_sameref_bf16']),
                   base_loss_max_abs_diff=float(np.abs(res['base_fp32'] - res['base_bf16']).max()),
                   final_loss_rel_diff=abs(res['final_loss_bf16'] - res['final_loss_fp32']) / res['final_loss_fp32'],
                   **{k: round(v, 4) for k, v in res.items() if k.endswith('tok_s_fp32') or k.endswith('tok_s_bf16')
                      or k.startswith('final_loss')}, response_tokens=int(len(res['base_fp32'])),
                   threads=torch.get_num_threads(), cpu_capability=torch.backends.cpu.get_cpu_capability())
    summary['bf16_default'] = bool(min(summary['train_speedup'], summary['score_speedup']) > 1
                                   and summary['jaccard_end_to_end'] >= 0.95 and summary['final_loss_rel_diff'] <= 0.01)
    print(json.dumps(summary, indent=2))
    if out: open(out, 'w').write(json.dumps(summary, indent=2))
    return summary

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0]); p.add_argument('--json')
    main(p.parse_args().json)
