#!/usr/bin/env python
"""Scoring and training benchmark of tokenclean against the original approach, side by side in one run.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/benchmark.py [--threads T] [--json OUT]

The data are the Token Cleaning authors' own 120 chats of the default pool (tests/fixtures/authors: their Tulu
`input_ids` and `labels` at max_len 2048, 35,571 tokens, 10,293 response tokens). Every ratio is measured in the same
run, on the same data, model and threads:

1. scoring: the original approach (`orig_scores` of nbs/api/03_scoring.ipynb: fixed batches of 4 in file order padded to
   their longest, one forward pass per batch as in their script (`--orig-passes 2`: an earlier, slower copy), full fp32 logits, cross-entropy twice, one model per pass, Python lists and
   a Python sort; the reference merged, as their script loads it) against tokenclean (`token_losses` of the base =
   adapter off and the reference = a LoRA adapter with non-zero B, merged for its pass, `join_scores`, `top_k_mask`) in fp32; and in bf16 only where `check_precision` passes on these chats
   (its time counted in). Each variant runs in its own child process (its peak RSS is its own);
2. model FLOP utilisation: useful FLOPs of scoring (each sample up to its last response token, the head at response
   positions only) per second, against the best fp32 and bf16 matmul rates timed in the same run and threads;
3. padding waste of the two batchings; the global threshold over 10M scores against a Python sort;
4. training: one `train_step` of 8 median-length chats (LoRA r 16 on the top 10 layers, as the CPU study) in fp32,
   under bf16 autocast as is (every frozen weight cast per matmul) and with `frozen_bf16` (cast once), and with 60%
   of the response tokens kept: tokens per second of each (best of `--train-reps`).

Each scoring side runs twice by default, interleaved (orig, tc, ..., orig, tc), and the best of each counts; all runs
are kept (`all_runs`). Timings are CPU seconds of each process (`time.process_time`) and wall seconds; the machine may be shared, so every
child records the load average (`os.getloadavg`) when it starts and ends, and the CPU model.
"""
from __future__ import annotations
import argparse, gzip, json, math, os, platform, re, resource, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
FX = ROOT/'tests'/'fixtures'/'authors'
MARK = 'BENCHJSON:'
clock = time.process_time

# --------------------------------------------------------------------------------------------- helpers
def setup(threads:int):
    os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    import torch
    torch.set_num_threads(threads)
    import transformers; transformers.logging.set_verbosity_error()
    return torch

def peak_rss_mb()->float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def rss_mb()->float:
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024
    return float('nan')

def cpu_name()->str:
    for line in open('/proc/cpuinfo'):
        if line.startswith('model name'): return line.split(':', 1)[1].strip()
    return platform.processor()

def load()->list: return [round(x, 2) for x in os.getloadavg()]

def matmul_peak(torch, dtype:str='fp32', n:int=2048, reps:int=5)->float:
    "Best GFLOP/s (CPU time) of an n×n×n matmul in `dtype` with the current thread setting."
    dt = dict(fp32=torch.float32, bf16=torch.bfloat16)[dtype]
    a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
    a @ b
    best = math.inf
    for _ in range(reps):
        t = clock(); a @ b; best = min(best, clock() - t)
    return 2 * n**3 / best / 1e9

def peaks(torch)->dict: return dict(fp32=matmul_peak(torch, 'fp32'), bf16=matmul_peak(torch, 'bf16'))

def fixtures(limit:int|None=None):
    "The authors' 120 chats (the first `limit` of them) as a `TokenizedPool` of their own Tulu encoding (max_len 2048)."
    import numpy as np
    from tokenclean.tokenizing import TokenizedPool
    chats = [json.loads(l) for l in (FX/'chats.jsonl').read_text().splitlines()]
    theirs = [json.loads(l) for l in gzip.open(FX/'authors_outputs.jsonl.gz', 'rt')]
    rows = [dict(id=t['id'], source=c['source'], input_ids=np.asarray(t['input_ids'], np.int32),
                 labels=np.asarray(t['labels'], np.int32)) for c, t in zip(chats, theirs)]
    rows = rows[:limit]
    return TokenizedPool(rows, {}, f'authors-fixtures-{len(rows)}', 2048, 'tulu', {})

def scoring_model(torch, args):
    "The packaged model with a LoRA adapter (r 64) whose B is non-zero (so base ≠ reference)."
    from tokenclean.models import load_model, add_lora
    torch.manual_seed(0)
    m = add_lora(load_model(args.model, device='cpu'))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if 'lora_B' in n: p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return m.eval()

def flops(model, rows:list)->dict:
    """Useful FLOPs of scoring `rows` once: 2·P·T + 2·n_layers·d_attn·ΣL² + 2·d·V·S, over the positions a score uses.
    L: each sample up to its last response token (samples with none left out), T = ΣL, S: response positions (the head
    is applied there only), P: parameters of the decoder layers. The reference's useful FLOPs are the base's (the
    authors scored it merged); tokenclean's low-rank path (`p_lora`) is overhead, not useful work."""
    import numpy as np
    from tokenclean.scoring import scored_part
    lm = model.get_base_model(); cfg = lm.config
    layers = lm.get_decoder().layers
    p_layers = sum(p.numel() for n, p in layers.named_parameters() if 'lora_' not in n and 'norm' not in n)
    p_lora = sum(p.numel() for n, p in layers.named_parameters() if 'lora_' in n)
    parts = [p for p in map(scored_part, rows) if p is not None]
    L = np.array([len(p['input_ids']) for p in parts], dtype=np.float64)
    S = float(sum((p['labels'][1:] != -100).sum() for p in parts))
    d_attn = cfg.num_attention_heads * getattr(cfg, 'head_dim', cfg.hidden_size // cfg.num_attention_heads)
    base = 2 * p_layers * L.sum() + 2 * cfg.num_hidden_layers * d_attn * float((L**2).sum()) + 2 * cfg.hidden_size * cfg.vocab_size * S
    return dict(base=base, ref=base, p_layers=p_layers, p_lora=p_lora, tokens_used=float(L.sum()),
                scored=S, longest_used=int(L.max()))

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
    "The original scoring approach: `orig_scores` of nbs/api/03_scoring.ipynb (the unexported cell is its only copy)."
    return notebook_function(ROOT/"nbs"/"api"/"03_scoring.ipynb", 'orig_scores')(*args, **kwargs)

# -------------------------------------------------------------------------------------------- child runs
def child_score(args)->dict:
    torch = setup(args.threads)
    import numpy as np
    res = dict(variant=args.child, load_start=load())
    tp = fixtures(args.limit)
    model = scoring_model(torch, args)
    fl = flops(model, tp.rows)
    res.update(rss_loaded_mb=rss_mb(), flops=fl, n_samples=len(tp), tokens=int(sum(len(r['input_ids']) for r in tp.rows)),
               scored=int(fl['scored']))
    pk = [peaks(torch)]
    if args.child == 'orig':
        t, w = clock(), time.perf_counter()
        scores, keep = orig_scores(model, tp.rows, 0, args.orig_batch, max_len=2048, passes=args.orig_passes)
        res['seconds'], res['wall_seconds'] = clock() - t, time.perf_counter() - w
        res['score_sum'] = float(np.sum(scores)); res['kept'] = int(sum(keep)); keep = np.asarray(keep)
    else:
        from tokenclean.scoring import token_losses, join_scores, choose_precision
        from tokenclean.selection import top_k_mask
        with tempfile.TemporaryDirectory() as root:
            t, w = clock(), time.perf_counter()
            prec = 'fp32'
            if args.child == 'tc_bf16':
                chk = choose_precision(model, tp, root, 'bf16', k=0.6, pad_id=0, max_tokens=args.max_tokens)
                res['check'], res['check_seconds'] = chk, clock() - t
                prec = 'bf16' if args.bf16_anyway else chk['precision']
                if prec == 'fp32':                                              # the check failed: fp32 is tc's row
                    res.update(peak_mb=peak_rss_mb(), matmul_gflops=pk[0], load_end=load(), scored_in='fp32 (see tc)')
                    return res
            tt = {}
            for name, ad in (('base', False), ('ref', True)):
                t1 = clock()
                st = token_losses(model, tp, root, adapter=ad, pad_id=0, progress=False, max_tokens=args.max_tokens,
                                  precision=prec)
                tt[name] = (clock() - t1, st)
            sc = join_scores(tp, tt['base'][1].read(), tt['ref'][1].read())
            keep = top_k_mask(sc.score, 0.6)
            res['seconds'], res['wall_seconds'] = clock() - t, time.perf_counter() - w
            res['seconds_base'], res['seconds_ref'], res['precision'] = tt['base'][0], tt['ref'][0], prec
            res['run'] = json.loads((tt['base'][1].path/'meta.json').read_text())['run']
            res['score_sum'] = float(sc.score.astype(np.float64).sum()); res['kept'] = int(keep.sum())
            scores = sc.score
    np.save(Path(args.out)/f'{args.child}-scores.npy', np.asarray(scores, np.float32))
    pk.append(peaks(torch))
    res.update(peak_mb=peak_rss_mb(), matmul_gflops={k: max(p[k] for p in pk) for k in ('fp32', 'bf16')}, load_end=load())
    return res

def child_train(args)->dict:
    torch = setup(args.threads)
    import numpy as np
    from tokenclean.models import load_model, add_lora, top_layers
    from tokenclean.training import train_step, TrainConfig, frozen_bf16
    res = dict(load_start=load())
    rows = sorted(fixtures(args.limit).rows, key=lambda r: len(r['input_ids']))
    rows = [r for r in rows if (r['labels'][1:] != -100).any()]
    rows = rows[len(rows) // 2: len(rows) // 2 + args.train_rows]          # median-length chats
    rng = np.random.default_rng(0); masked = []
    for r in rows:
        lab = r['labels'].copy(); pos = np.nonzero(lab[1:] != -100)[0] + 1
        lab[rng.permutation(pos)[:len(pos) - math.floor(len(pos) * 0.6)]] = -100
        masked.append(dict(r, labels=lab))
    torch.manual_seed(0)
    base = load_model(args.model, device='cpu')
    model = add_lora(base, r=16, alpha=32, dropout=0.0, targets=top_layers(base.config, 10)); model.train()
    idxs = list(range(len(rows)))
    def step(rs, prec, once):
        cfg = TrainConfig(micro_batch=len(rs), batch_size=len(rs), precision=prec)
        stats = dict(skipped_steps=0, skipped_micro_batches=0, trained_tokens=0)
        with frozen_bf16(model, once):
            t, w = clock(), time.perf_counter(); loss = train_step(model, rs, idxs, cfg, 0, stats)
            c, w = clock() - t, time.perf_counter() - w
        model.zero_grad(set_to_none=True)
        return c, w, loss
    variants = dict(fp32=(rows, 'fp32', False), bf16_autocast=(rows, 'bf16', False), bf16=(rows, 'bf16', True),
                    fp32_masked=(masked, 'fp32', False))
    step(rows, 'fp32', False)                                                   # warm-up
    runs = {k: [] for k in variants}
    for _ in range(args.train_reps):                                            # interleaved
        for k, v in variants.items(): runs[k].append(step(*v))
    ntok = int(sum(len(r['input_ids']) for r in rows))
    for k, rs in runs.items():
        best = min(rs)
        res[k] = dict(seconds=best[0], wall_seconds=min(r[1] for r in rs), tokens_per_s=ntok / best[0], loss=best[2],
                      all_seconds=[r[0] for r in rs])
    res.update(rows=len(rows), tokens=ntok, trained_full=int(sum((r['labels'][1:] != -100).sum() for r in rows)),
               trained_masked=int(sum((r['labels'][1:] != -100).sum() for r in masked)), load_end=load())
    return res

def run_child(kind:str, args)->dict:
    cmd = [sys.executable, str(HERE), '--child', kind] + [f'--{k.replace("_", "-")}={v}' for k, v in vars(args).items()
                                                         if k not in ('child', 'json') and v is not None and not isinstance(v, bool)]
    cmd += ['--bf16-anyway'] if args.bf16_anyway else []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0: sys.exit(f'child {kind} failed:\n{p.stderr[-3000:]}')
    res = json.loads([l for l in p.stdout.splitlines() if l.startswith(MARK)][-1][len(MARK):])
    res['wall_s'] = time.perf_counter() - t
    print(f'  [{kind}] done in {res["wall_s"]:.0f}s (load {res["load_start"][0]:.1f} -> {res["load_end"][0]:.1f})', flush=True)
    return res

# ---------------------------------------------------------------------------------- in-process measures
def padding(args)->dict:
    from tokenclean.scoring import length_batches, padding_waste, scored_part
    rows = fixtures(args.limit).rows
    L = [len(r['input_ids']) for r in rows]
    orig = padding_waste(L, [list(range(i, min(i + args.orig_batch, len(L)))) for i in range(0, len(L), args.orig_batch)])
    U = [len(p['input_ids']) for p in map(scored_part, rows) if p is not None]
    return dict(orig=orig, tc=padding_waste(U, length_batches(U, args.max_tokens)))

def threshold(args)->dict:
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
    return dict(n=args.n_scores, top_k_s=best, kept=int(keep.sum()), py_sort_n=m, py_sort_s=py, py_sort_est_s=py * scale)

# ---------------------------------------------------------------------------------------------- report
def summary(r:dict)->dict:
    "Ratios and utilisation, each from timings of this run."
    o, pk = r.get('orig'), r['matmul_gflops']
    out = dict(matmul_gflops=pk)
    if 'check' in r.get('tc_bf16', {}): out['check'] = {k: r['tc_bf16']['check'][k] for k in ('precision', 'jaccard', 'reason')}
    for k in ('tc', 'tc_bf16'):
        if o is None or k not in r or 'seconds' not in r[k]: continue
        t = r[k]; fl = t['flops']['base'] + t['flops']['ref']
        prec = t.get('precision', 'fp32')
        out[k] = dict(precision=prec, cpu_ratio=o['seconds'] / t['seconds'], wall_ratio=o['wall_seconds'] / t['wall_seconds'],
                      mem_ratio=t['peak_mb'] / o['peak_mb'], gflops=fl / t['seconds'] / 1e9,
                      mfu_fp32=fl / t['seconds'] / 1e9 / pk['fp32'], mfu_bf16=fl / t['seconds'] / 1e9 / pk['bf16'],
                      tokens_per_cpu_s=o['tokens'] / t['seconds'], kept=t['kept'])
    if 'train' not in r: return out
    tr = r['train']
    out['train'] = {k: tr[k]['tokens_per_s'] for k in ('fp32', 'bf16_autocast', 'bf16', 'fp32_masked')}
    out['train']['bf16_over_fp32'] = tr['bf16']['tokens_per_s'] / tr['fp32']['tokens_per_s']
    out['train']['bf16_autocast_over_fp32'] = tr['bf16_autocast']['tokens_per_s'] / tr['fp32']['tokens_per_s']
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--threads', type=int, default=int(os.environ.get('OMP_NUM_THREADS', 1)))
    ap.add_argument('--json', help='also write the results here')
    ap.add_argument('--model', default='smollm2-135m-instruct')
    ap.add_argument('--max-tokens', type=int, default=8192, help="tokenclean's padded tokens per batch")
    ap.add_argument('--orig-batch', type=int, default=4, help="the original's fixed batch size (the authors' 4)")
    ap.add_argument('--orig-passes', type=int, default=1, help="forward passes per batch of the original (theirs: 1)")
    ap.add_argument('--n-scores', type=int, default=10_000_000)
    ap.add_argument('--py-sort-n', type=int, default=1_000_000, help='Python sort size (extrapolated n log n)')
    ap.add_argument('--train-rows', type=int, default=8)
    ap.add_argument('--train-reps', type=int, default=2)
    ap.add_argument('--limit', type=int, help="only the first LIMIT chats (whole batches of the original: a multiple of 4)")
    ap.add_argument('--variants', default='orig,tc,tc_bf16,train,orig,tc',
                    help='children in this order; a repeated one runs again (A, B, A, B) and its best run counts')
    ap.add_argument('--bf16-anyway', action='store_true', help='time bf16 scoring even where the check fails')
    ap.add_argument('--child', help=argparse.SUPPRESS); ap.add_argument('--out', help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = child_train(args) if args.child == 'train' else child_score(args)
        print(MARK + json.dumps(res)); return
    t0 = time.perf_counter()
    torch = setup(args.threads)
    import numpy as np
    import tokenclean, transformers
    r = dict(config={k: v for k, v in vars(args).items() if k not in ('child', 'json', 'out')},
             machine=dict(cpu=cpu_name(), cores=os.cpu_count(), threads=args.threads, python=platform.python_version(),
                          torch=torch.__version__, transformers=transformers.__version__, tokenclean=tokenclean.__version__,
                          avx512_bf16=torch.cpu._is_avx512_bf16_supported(), amx=torch.cpu._is_amx_tile_supported(),
                          load_start=load()))
    print(f"tokenclean benchmark: the authors' 120 chats, {args.threads} thread(s), {r['machine']['cpu']}", flush=True)
    pk = [peaks(torch)]
    r['padding'] = padding(args)
    r['threshold'] = threshold(args); print('  [threshold] done', flush=True)
    with tempfile.TemporaryDirectory() as out:
        args.out = out
        runs = {}
        for v in args.variants.split(','): runs.setdefault(v, []).append(run_child(v, args))   # repeats interleave
        for v, rs in runs.items():                                       # the best (least wall time) of each variant
            r[v] = min(rs, key=lambda x: x.get('wall_seconds', x['wall_s']))
            if len(rs) > 1: r[v]['all_runs'] = [{k: x.get(k) for k in ('seconds', 'wall_seconds', 'wall_s', 'peak_mb',
                                                                    'load_start', 'load_end')} for x in rs]
        scores = {v: np.load(Path(out)/f'{v}-scores.npy') for v in ('tc', 'tc_bf16', 'orig')
                  if (Path(out)/f'{v}-scores.npy').exists()}
    pk.append(peaks(torch))
    r['matmul_gflops'] = {k: max([p[k] for p in pk] + [r[v]['matmul_gflops'][k] for v in scores]) for k in ('fp32', 'bf16')}
    from tokenclean.selection import top_k_mask
    keep = {v: top_k_mask(s, 0.6) for v, s in scores.items()}
    r['agreement'] = {f'{a}/{b}': dict(jaccard=float((keep[a] & keep[b]).sum() / (keep[a] | keep[b]).sum()),
                                       max_abs_score_diff=float(np.abs(scores[a] - scores[b]).max()))
                      for a, b in (('tc', 'orig'), ('tc_bf16', 'orig'), ('tc_bf16', 'tc')) if a in keep and b in keep}
    r['machine']['load_end'] = load()
    r['summary'] = summary(r); r['total_s'] = time.perf_counter() - t0
    print(json.dumps(dict(summary=r['summary'], agreement=r['agreement'], padding=r['padding']), indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True); Path(args.json).write_text(json.dumps(r, indent=1) + '\n')
        print(f'wrote {args.json}')

if __name__ == '__main__': main()
