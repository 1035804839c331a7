#!/usr/bin/env python
"""Performance benchmark of tokenclean's scoring, thresholding and masked training step.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/benchmark.py [--samples N] [--threads T] [--json OUT]

Every ratio is measured in the same run, on the same data, model and threads:

1. scoring throughput and peak memory of `token_losses` (base = adapter off, reference = a LoRA adapter
   with non-zero B) against a faithful re-implementation of the original approach (`orig_scores`, from the scoring notebook);
   each variant runs in its own child process, whose peak RSS is read with `resource.getrusage`;
2. model FLOP utilisation of scoring against a large fp32 matmul timed here with the same threads;
3. padding waste (padded / real tokens - 1) of tokenclean's batching against the original's;
4. the global threshold over 10M random scores: `top_k_mask` against a pure-Python sort;
5. a masked training step (60% of response tokens kept) against a full-token step on the same batch.

The original approach is `orig_scores` of nbs/03_scoring.ipynb, an unexported cell that this script runs
(`notebook_function`): the notebook checks it against `token_losses`, the benchmark times it.
"""
from __future__ import annotations
import argparse, json, math, os, platform, re, resource, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve()
MARK = 'BENCHJSON:'
# Timings are CPU seconds of the process (time.process_time): on a shared, loaded machine wall time mostly measures
# the other jobs; with an idle machine and 1 thread the two agree. Wall seconds are recorded as well.
clock = time.process_time

# --------------------------------------------------------------------------------------------- helpers
def setup(threads:int):
    os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    import torch
    torch.set_num_threads(threads)
    import transformers; transformers.logging.set_verbosity_error()
    try:
        from transformers.utils import logging as hl; hl.disable_progress_bar()
    except Exception: pass
    return torch

def peak_rss_mb()->float:
    "Peak resident set size of this process (Linux reports KiB)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def rss_mb()->float:
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024
    return float('nan')

def matmul_peak(torch, n:int=3072, reps:int=5)->float:
    "Best fp32 GFLOP/s of an n×n×n matmul with the current thread setting."
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(reps):
        t = clock(); a @ b; best = min(best, clock() - t)
    return 2 * n**3 / best / 1e9

def pool_slice(tok, samples:int, seed:int, max_len:int):
    "A fixed, seeded random slice of the default pool, tokenized."
    import numpy as np
    from tokenclean.data import load_pool, tokenize_pool
    pool = load_pool('default')
    idx = np.random.default_rng(seed).permutation(len(pool))[:samples]
    return tokenize_pool(tok, [pool[i] for i in sorted(idx)], max_len, verbose=False)

def scoring_model(torch, args):
    "The packaged model with a LoRA adapter whose B is non-zero (so base ≠ reference)."
    from tokenclean.models import load_model, add_lora
    torch.manual_seed(0)                                                    # the same LoRA A in every child
    m = add_lora(load_model(args.model, device='cpu'))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if 'lora_B' in n: p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return m.eval()

def flops(model, rows:list)->dict:
    """Useful FLOPs of scoring `rows` once: 2·P·T + 2·n_layers·d_attn·ΣL² + 2·d·V·S.
    P: parameters of the decoder layers (incl. LoRA when on), T: real tokens, L: sample lengths (causal attention,
    QKᵀ and AV each 2·L²·d_attn/2), S: scored positions, d·V: the output head, applied only at scored positions."""
    import numpy as np
    lm = model.get_base_model(); cfg = lm.config
    body = lm.get_decoder()
    p_layers = sum(p.numel() for n, p in body.layers.named_parameters() if 'lora_' not in n and 'norm' not in n)
    p_lora = sum(p.numel() for n, p in body.layers.named_parameters() if 'lora_' in n)
    L = np.array([len(r['input_ids']) for r in rows], dtype=np.float64)
    S = float(sum((r['labels'][1:] != -100).sum() for r in rows))
    d_attn = cfg.num_attention_heads * getattr(cfg, 'head_dim', cfg.hidden_size // cfg.num_attention_heads)
    attn = 2 * cfg.num_hidden_layers * d_attn * float((L**2).sum())
    head = 2 * cfg.hidden_size * cfg.vocab_size * S
    base = 2 * p_layers * L.sum() + attn + head
    return dict(base=base, ref=base + 2 * p_lora * L.sum(), p_layers=p_layers, p_lora=p_lora, tokens=float(L.sum()), scored=S)

# ----------------------------------------------------------------------- the original approach, from its notebook
def notebook_function(nb:Path, name:str):
    "The function `name` as the (unexported) cell of notebook `nb` that defines it runs, alone."
    from execnb.nbio import read_nb
    cells = [c for c in read_nb(nb).cells if c.cell_type == 'code' and re.search(rf'^def {name}\(', c.source, re.M)]
    if len(cells) != 1: sys.exit(f'{nb}: {len(cells)} cells define {name}, not one')
    ns = {}
    exec(compile(cells[0].source, f'{nb}:{name}', 'exec'), ns)
    return ns[name]

def orig_scores(*args, **kwargs):
    "The original scoring approach: `orig_scores` of nbs/03_scoring.ipynb (the unexported cell is its only copy)."
    return notebook_function(HERE.parents[1]/'nbs'/'03_scoring.ipynb', 'orig_scores')(*args, **kwargs)

# -------------------------------------------------------------------------------------------- child runs
def child_score(args)->dict:
    torch = setup(args.threads)
    import numpy as np
    from tokenclean.models import load_tokenizer
    tok = load_tokenizer(args.model)
    tp = pool_slice(tok, args.samples, args.seed, args.max_len)
    model = scoring_model(torch, args)
    fl = flops(model, tp.rows)
    res = dict(variant=args.child, rss_loaded_mb=rss_mb(), peak_loaded_mb=peak_rss_mb(), flops=fl,
               n_samples=len(tp), tokens=int(fl['tokens']), scored=int(fl['scored']))
    peaks = [matmul_peak(torch)]
    if args.child == 'orig':
        t, w = clock(), time.perf_counter()
        scores, keep = orig_scores(model, tp.rows, tok.pad_token_id, args.orig_batch, max_len=args.max_len)
        res['seconds'], res['wall_seconds'] = clock() - t, time.perf_counter() - w
        res['base_loss_sum'] = None; res['score_sum'] = float(np.sum(scores)); res['kept'] = int(sum(keep))
    else:
        from tokenclean.scoring import token_losses, join_scores
        from tokenclean.selection import top_k_mask
        with tempfile.TemporaryDirectory() as root:
            t, w = clock(), time.perf_counter(); tt = {}
            for name, ad in (('base', False), ('ref', True)):
                t1 = clock()
                st = token_losses(model, tp, root, adapter=ad, pad_id=tok.pad_token_id, progress=False, max_tokens=args.max_tokens)
                tt[name] = (clock() - t1, st)
            sc = join_scores(tp, tt['base'][1].read(), tt['ref'][1].read())
            keep = top_k_mask(sc.score, 0.6)
            res['seconds'], res['wall_seconds'] = clock() - t, time.perf_counter() - w
            res['seconds_base'], res['seconds_ref'] = tt['base'][0], tt['ref'][0]
            res['score_sum'] = float(sc.score.astype(np.float64).sum()); res['kept'] = int(keep.sum())
    peaks.append(matmul_peak(torch))
    res.update(peak_mb=peak_rss_mb(), matmul_gflops=max(peaks))
    return res

def child_train(args)->dict:
    torch = setup(args.threads)
    import numpy as np
    from tokenclean.models import load_model, load_tokenizer, add_lora
    from tokenclean.training import train_step, TrainConfig
    tok = load_tokenizer(args.model)
    tp = pool_slice(tok, args.samples, args.seed, args.max_len)
    rows = sorted(tp.rows, key=lambda r: len(r['input_ids']))
    rows = rows[len(rows) // 2: len(rows) // 2 + args.train_rows]          # median-length samples
    rng = np.random.default_rng(0); masked = []
    for r in rows:
        lab = r['labels'].copy(); pos = np.nonzero(lab[1:] != -100)[0] + 1
        drop = rng.permutation(pos)[:len(pos) - math.floor(len(pos) * 0.6)]
        lab[drop] = -100; masked.append(dict(r, labels=lab))
    torch.manual_seed(0)
    model = add_lora(load_model(args.model, device='cpu')); model.train()
    cfg = TrainConfig(micro_batch=len(rows), batch_size=len(rows))
    idxs = list(range(len(rows)))
    def step(rs):
        stats = dict(skipped_steps=0, skipped_micro_batches=0, trained_tokens=0)
        t = clock(); loss = train_step(model, rs, idxs, cfg, tok.pad_token_id, stats)
        model.zero_grad(set_to_none=True)
        return clock() - t, loss, stats['trained_tokens']
    step(rows)                                                               # warm-up
    full, mask = [], []
    for _ in range(args.train_reps):
        full.append(step(rows)); mask.append(step(masked))
    return dict(rows=len(rows), tokens=int(sum(len(r['input_ids']) for r in rows)),
                full_s=min(x[0] for x in full), masked_s=min(x[0] for x in mask),
                full_trained=full[0][2], masked_trained=mask[0][2], full_loss=full[0][1], masked_loss=mask[0][1])

def run_child(kind:str, args)->dict:
    cmd = [sys.executable, str(HERE), '--child', kind] + [f'--{k.replace("_", "-")}={v}' for k, v in vars(args).items()
                                                         if k not in ('child', 'json') and v is not None and not isinstance(v, bool)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0: sys.exit(f'child {kind} failed:\n{p.stderr[-3000:]}')
    line = [l for l in p.stdout.splitlines() if l.startswith(MARK)][-1]
    res = json.loads(line[len(MARK):]); res['wall_s'] = time.perf_counter() - t
    print(f'  [{kind}] done in {res["wall_s"]:.0f}s', flush=True)
    return res

# ---------------------------------------------------------------------------------- in-process measures
def padding(args)->dict:
    setup(args.threads)
    from tokenclean.models import load_tokenizer
    from tokenclean.scoring import length_batches, padding_waste
    tok = load_tokenizer(args.model)
    def waste(tp):
        L = [len(r['input_ids']) for r in tp.rows]
        orig = padding_waste(L, [list(range(i, min(i + args.orig_batch, len(L)))) for i in range(0, len(L), args.orig_batch)])
        shards = [list(range(i, min(i + 256, len(L)))) for i in range(0, len(L), 256)]    # token_losses' shards
        tc = [[s[j] for j in b] for s in shards for b in length_batches([L[i] for i in s], args.max_tokens)]
        return dict(orig=orig, tc=padding_waste(L, tc))
    out = dict(slice=waste(pool_slice(tok, args.samples, args.seed, args.max_len)))
    if args.full_pool_padding:
        from tokenclean.data import load_pool, tokenize_pool
        out['pool'] = waste(tokenize_pool(tok, load_pool('default'), args.max_len, verbose=False))
    return out

def threshold(args)->dict:
    setup(args.threads)
    import numpy as np
    from tokenclean.selection import top_k_mask
    s = np.random.default_rng(0).standard_normal(args.n_scores).astype(np.float32)
    top_k_mask(s[:1000], 0.6)
    best = math.inf
    for _ in range(3):
        t = clock(); keep = top_k_mask(s, 0.6); best = min(best, clock() - t)
    m = args.py_sort_n
    lst = s[:m].tolist(); n_keep = math.floor(m * 0.6 + 1e-9)
    t = clock(); thr = sorted(lst, reverse=True)[n_keep - 1]; py = clock() - t
    assert int(top_k_mask(s[:m], 0.6).sum()) == n_keep and (s[:m] > thr).sum() < n_keep <= (s[:m] >= thr).sum()
    scale = args.n_scores * math.log(args.n_scores) / (m * math.log(m))
    return dict(n=args.n_scores, top_k_s=best, kept=int(keep.sum()), py_sort_n=m, py_sort_s=py,
                py_sort_est_s=py * scale, extrapolated=m != args.n_scores)

# ---------------------------------------------------------------------------------------------- report
def report(r:dict)->list:
    o, t = r['orig'], r['tc']
    tput = lambda x: x['tokens'] / x['seconds']
    mfu = lambda x: (x['flops']['base'] + x['flops']['ref']) / x['seconds'] / (r['matmul_gflops'] * 1e9)
    rows = []
    def add(metric, value, goal, ok, note=''): rows.append(dict(metric=metric, value=value, goal=goal, met=bool(ok), note=note))
    add('scoring throughput vs original', f"{tput(t)/tput(o):.2f}x", '>= 4x', tput(t) / tput(o) >= 4,
        f"{tput(t):.0f} vs {tput(o):.1f} tokens per CPU-s (both models)")
    add('peak memory vs original', f"{t['peak_mb']/o['peak_mb']:.2f}x", '<= 0.6x', t['peak_mb'] / o['peak_mb'] <= 0.6,
        f"{t['peak_mb']:.0f} vs {o['peak_mb']:.0f} MB peak RSS")
    add('model FLOP utilisation', f"{mfu(t):.1%}", '>= 50%', mfu(t) >= 0.5,
        f"{(t['flops']['base']+t['flops']['ref'])/t['seconds']/1e9:.0f} of {r['matmul_gflops']:.0f} GFLOP/s")
    pw = r['padding']['slice']
    add('padding waste (tokenclean)', f"{pw['tc']:.1%}", '<= 5%', pw['tc'] <= 0.05, f"original: {pw['orig']:.1%}" +
        (f"; whole pool: {r['padding']['pool']['tc']:.1%} vs {r['padding']['pool']['orig']:.1%}" if 'pool' in r['padding'] else ''))
    th = r['threshold']
    add('threshold over 10M scores', f"{th['top_k_s']:.2f} s", '<= 1 s', th['top_k_s'] <= 1,
        f"Python sort: {th['py_sort_est_s']:.1f} s" + (f" (n log n from {th['py_sort_n']:,})" if th['extrapolated'] else ''))
    tr = r['train']
    add('masked (60%) / full training step', f"{tr['masked_s']/tr['full_s']:.2f}x", '<= 1.0x', tr['masked_s'] / tr['full_s'] <= 1.0,
        f"{tr['masked_s']:.2f} vs {tr['full_s']:.2f} s, {tr['rows']} samples")
    return rows

def print_table(rows:list):
    w = [max(len(str(x[k])) for x in rows + [dict(metric='metric', value='value', goal='goal', met='met', note='note')])
         for k in ('metric', 'value', 'goal')]
    hdr = f"{'metric':<{w[0]}}  {'value':>{w[1]}}  {'goal':<{w[2]}}  met  note"
    print(hdr); print('-' * len(hdr))
    for x in rows: print(f"{x['metric']:<{w[0]}}  {x['value']:>{w[1]}}  {x['goal']:<{w[2]}}  {'yes' if x['met'] else 'NO ':<3}  {x['note']}")

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--samples', type=int, default=48,
                    help='samples in the seeded slice of the default pool (the original approach needs ~40 CPU-s per 1k tokens)')
    ap.add_argument('--threads', type=int, default=int(os.environ.get('OMP_NUM_THREADS', 1)))
    ap.add_argument('--json', help='also write the results here')
    ap.add_argument('--model', default='smollm2-135m-instruct')
    ap.add_argument('--seed', type=int, default=0, help='seed of the pool slice')
    ap.add_argument('--max-len', type=int, default=2048)
    ap.add_argument('--max-tokens', type=int, default=8192, help="tokenclean's padded tokens per batch")
    ap.add_argument('--orig-batch', type=int, default=8, help="the original's fixed batch size")
    ap.add_argument('--n-scores', type=int, default=10_000_000)
    ap.add_argument('--py-sort-n', type=int, default=1_000_000, help='Python sort size (extrapolated n log n to --n-scores)')
    ap.add_argument('--train-rows', type=int, default=2)
    ap.add_argument('--train-reps', type=int, default=2)
    ap.add_argument('--full-pool-padding', action='store_true', help='also compute padding waste on the whole pool')
    ap.add_argument('--child', help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = child_train(args) if args.child == 'train' else child_score(args)
        print(MARK + json.dumps(res)); return
    t0 = time.perf_counter()
    torch = setup(args.threads)
    print(f'tokenclean benchmark: {args.samples} samples, {args.threads} thread(s), model {args.model}', flush=True)
    r = dict(config={k: v for k, v in vars(args).items() if k not in ('child', 'json')})
    peaks = [matmul_peak(torch)]
    r['padding'] = padding(args)
    r['threshold'] = threshold(args); print('  [threshold] done', flush=True)
    r['tc'] = run_child('tc', args)
    r['orig'] = run_child('orig', args)
    r['train'] = run_child('train', args)
    peaks.append(matmul_peak(torch))
    r['matmul_gflops'] = max(peaks + [r[k]['matmul_gflops'] for k in ('tc', 'orig')])
    import tokenclean, transformers
    r['machine'] = dict(cpu=_cpu_name(), cores=os.cpu_count(), threads=args.threads, python=platform.python_version(),
                        torch=torch.__version__, transformers=transformers.__version__, tokenclean=tokenclean.__version__,
                        load_avg=os.getloadavg())
    r['rows'] = report(r); r['total_s'] = time.perf_counter() - t0
    t, o = r['tc'], r['orig']
    print(f"\nslice: {t['n_samples']} samples, {t['tokens']:,} tokens ({t['scored']:,} scored); matmul peak {r['matmul_gflops']:.0f} GFLOP/s; "
          f"{args.threads} thread(s); total {r['total_s']:.0f} s\n")
    print_table(r['rows'])
    print(f"\nwall clock (load average {r['machine']['load_avg'][0]:.1f} on {os.cpu_count()} cores): tokenclean {t['tokens']/t['wall_seconds']:.0f} tok/s, "
          f"original {o['tokens']/o['wall_seconds']:.1f} tok/s; timings above are CPU seconds of each process")
    print(f"\nscore sums (sanity: same scores up to fp error): tokenclean {t['score_sum']:.4f}, original {o['score_sum']:.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True); Path(args.json).write_text(json.dumps(r, indent=2))
        print(f'wrote {args.json}')

def _cpu_name()->str:
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor()

if __name__ == '__main__': main()
