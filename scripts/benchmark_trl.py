#!/usr/bin/env python
"""Training benchmark: tokenclean's masked training step against TRL's SFTTrainer, on the same exported data.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/benchmark_trl.py [--reps 2] [--steps 20] [--batch 2] [--json OUT]

In pieces (one round each, the order rotated by `--first-rep`), then merged into one result:

    ... benchmark_trl.py --reps 1 --first-rep 0 --json r0.json; ... --reps 1 --first-rep 1 --json r1.json
    ... benchmark_trl.py --merge r0.json,r1.json --json OUT

The data is a tokenclean export (`tokenclean.export.export_cleaned`: pre-tokenized `labels`, 60% of the response
tokens kept by a seeded random selection) of a seeded slice of the default pool; the model is the packaged
SmolLM2-135M-Instruct with the same LoRA (r=16, alpha=32, no dropout, the seven projections) in every variant; every
variant trains the same batches in the same order (sequential, `--batch` samples per step, no accumulation), with
the same optimizer (torch AdamW, constant lr 1e-4). Variants:

- `tc`: `tokenclean.training.train_step` (the output head applied only at kept positions) + `opt.step()`;
- `trl_nll`: `SFTTrainer.train()` with TRL's default loss (`loss_type="nll"`, TRL's fused LM head);
- (`loss_type="chunked_nll"` is not timed: in TRL 1.16 it is a deprecated alias that `SFTConfig` turns into "nll",
  so it would time the same code twice; `--variants` still accepts `trl_chunked`;)
- `tc_gc`, `trl_nll_gc`: tokenclean and TRL's default loss with gradient checkpointing on (TRL's default setting).

Each run is its own child process (so peak memory is its own); runs are interleaved A B C ... A B C ... (`--reps`
rounds, the order rotated each round), since the machine may be shared: the page reports medians and the spread.
Per run: throughput = real (unpadded) tokens of the timed steps per CPU second of the process (`time.process_time`;
wall seconds too), the first step being a warm-up and not timed; memory = the peak RSS sampled every 5 ms from just
before the first step to the end of training, minus the RSS just before it (the training's own memory: activations,
logits, gradients, optimizer state), and the process's peak RSS (`ru_maxrss`). Ratios are tokenclean / TRL, per
round (adjacent runs) and then the median over rounds.
"""
from __future__ import annotations
import argparse, json, os, platform, resource, statistics, subprocess, sys, tempfile, threading, time
from pathlib import Path

HERE = Path(__file__).resolve()
MARK = 'BENCHJSON:'
MODEL = 'smollm2-135m-instruct'
VARIANTS = ('tc', 'trl_nll', 'tc_gc', 'trl_nll_gc')
LORA = dict(r=16, alpha=32, dropout=0.0)
TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']

def rss_mb()->float:
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024
    return float('nan')

class RSSPeak:
    "Samples this process's RSS every `dt` seconds in a thread; `.peak` is the largest seen."
    def __init__(self, dt:float=0.005): self.dt, self.peak, self._stop = dt, rss_mb(), threading.Event()
    def _run(self):
        while not self._stop.is_set(): self.peak = max(self.peak, rss_mb()); time.sleep(self.dt)
    def __enter__(self): self.t = threading.Thread(target=self._run, daemon=True); self.t.start(); return self
    def __exit__(self, *a): self._stop.set(); self.t.join(); self.peak = max(self.peak, rss_mb())

def setup(threads:int):
    os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    import warnings
    warnings.filterwarnings('ignore')
    import torch
    torch.set_num_threads(threads)
    import datasets, transformers
    transformers.logging.set_verbosity_error(); datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    return torch

# ----------------------------------------------------------------------------------------------- the data
def make_export(out:Path, n:int, seed:int, max_len:int)->dict:
    "Export a seeded slice of the default pool, 60% of response tokens kept at random, no sample left empty."
    import numpy as np
    from tokenclean.pools import load_pool
    from tokenclean.tokenizing import tokenize_pool
    from tokenclean.export import export_cleaned, export_meta
    from tokenclean.models import load_tokenizer
    from tokenclean.scoring import Scores
    from tokenclean.selection import select, apply_selection
    pool = load_pool('default')
    idx = np.random.default_rng(seed).permutation(len(pool))[:3 * n]
    tp = tokenize_pool(load_tokenizer(MODEL), [pool[i] for i in sorted(idx)], max_len, verbose=False)
    rows = [r for r in tp.rows if (r['labels'] != -100).sum() >= 5][:n]     # TRL would drop emptied samples
    pos = [np.flatnonzero(r['labels'] != -100).astype(np.int32) for r in rows]
    off = np.concatenate([[0], np.cumsum([len(p) for p in pos])])
    sc = Scores([r['id'] for r in rows], [r['source'] for r in rows], off, np.concatenate(pos),
                np.concatenate([r['input_ids'][p] for r, p in zip(rows, pos)]), np.zeros(off[-1], np.float32),
                np.zeros(off[-1], np.float32))
    sel = select(sc, 'random', 0.6, seed)
    cleaned = apply_selection(sel, rows)
    assert all((r['labels'][1:] != -100).any() for r in cleaned), 'a sample was emptied: change --seed'
    export_cleaned(cleaned, out, export_meta(sel, dict(model=MODEL, pool='default', max_len=max_len)))
    return dict(samples=len(cleaned), tokens=int(sum(len(r['input_ids']) for r in cleaned)),
                kept=int(sum((r['labels'][1:] != -100).sum() for r in cleaned)))

# ----------------------------------------------------------------------------------------------- one run
def run_tc(torch, ds, args, gc:bool)->dict:
    import numpy as np
    from tokenclean.models import load_model, add_lora
    from tokenclean.training import TrainConfig, batch_plan, train_step, _checkpointing
    tok_pad = 2
    torch.manual_seed(0)
    model = add_lora(load_model(MODEL, device='cpu'), r=LORA['r'], alpha=LORA['alpha'], dropout=LORA['dropout'], targets=TARGETS)
    rows = [dict(id=i, input_ids=np.asarray(x, np.int32), labels=np.asarray(l, np.int32))
            for i, x, l in zip(ds['id'], ds['input_ids'], ds['labels'])]
    cfg = TrainConfig(lr=1e-4, batch_size=args.batch, micro_batch=args.batch, shuffle=False, gradient_checkpointing=gc)
    plan = batch_plan(len(rows), cfg)[:args.steps + 1]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    if gc: _checkpointing(model)
    model.train()
    stats, marks, losses = dict(skipped_steps=0, skipped_micro_batches=0, trained_tokens=0), [], []
    base = rss_mb()
    with RSSPeak() as peak:
        marks.append((time.process_time(), time.perf_counter()))
        for idxs in plan:
            losses.append(train_step(model, rows, idxs, cfg, tok_pad, stats))
            opt.step(); opt.zero_grad(set_to_none=True)
            marks.append((time.process_time(), time.perf_counter()))
    return dict(marks=marks, base_rss=base, peak_rss=peak.peak, first_loss=losses[0], plan=plan)

def run_trl(torch, ds, args, loss_type:str, gc:bool, out:str)->dict:
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer
    from tokenclean.models import load_model, load_tokenizer
    marks = []
    class Marks(TrainerCallback):
        def on_train_begin(self, *a, **k): marks.append((time.process_time(), time.perf_counter()))
        def on_step_end(self, *a, **k): marks.append((time.process_time(), time.perf_counter()))
    torch.manual_seed(0)
    model, tok = load_model(MODEL, device='cpu'), load_tokenizer(MODEL)
    cfg = SFTConfig(output_dir=out, max_steps=args.steps + 1, per_device_train_batch_size=args.batch, learning_rate=1e-4,
                    lr_scheduler_type='constant', optim='adamw_torch', weight_decay=0.0, loss_type=loss_type,
                    gradient_checkpointing=gc, max_length=None, train_sampling_strategy='sequential', shuffle_dataset=False,
                    logging_steps=1, save_strategy='no', report_to='none', disable_tqdm=True, use_cpu=True, bf16=False,
                    dataloader_num_workers=0, seed=0)
    peft = LoraConfig(r=LORA['r'], lora_alpha=LORA['alpha'], lora_dropout=LORA['dropout'], target_modules=TARGETS,
                      task_type='CAUSAL_LM')
    tr = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok, peft_config=peft, callbacks=[Marks()])
    assert len(tr.train_dataset) == len(ds)
    base = rss_mb()
    with RSSPeak() as peak: tr.train()
    first = next(h['loss'] for h in tr.state.log_history if 'loss' in h)
    return dict(marks=marks, base_rss=base, peak_rss=peak.peak, first_loss=float(first))

def child(args):
    load0 = os.getloadavg()
    torch = setup(args.threads)
    import datasets
    ds = datasets.load_from_disk(args.data)
    v = args.child
    with tempfile.TemporaryDirectory() as out:
        if v.startswith('tc'): r = run_tc(torch, ds, args, gc=v.endswith('_gc'))
        else: r = run_trl(torch, ds, args, 'chunked_nll' if 'chunked' in v else 'nll', v.endswith('_gc'), out)
    m = r['marks']
    assert len(m) == args.steps + 2, f'{v}: {len(m)} step marks for {args.steps + 1} steps'
    lens = [len(x) for x in ds['input_ids']]
    timed = range(1, args.steps + 1)                                         # step 0 is the warm-up
    tokens = sum(sum(lens[j] for j in range(s * args.batch, (s + 1) * args.batch)) for s in timed)
    cpu, wall = m[-1][0] - m[1][0], m[-1][1] - m[1][1]
    res = dict(variant=v, tokens=tokens, cpu_s=cpu, wall_s=wall, tokens_per_cpu_s=tokens / cpu, tokens_per_s=tokens / wall,
               train_mem_mb=r['peak_rss'] - r['base_rss'], peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               base_rss_mb=r['base_rss'], first_loss=r['first_loss'], load_start=load0, load_end=os.getloadavg())
    print(MARK + json.dumps(res), flush=True)

# ----------------------------------------------------------------------------------------------- the parent
def spawn(variant:str, data:str, args)->dict:
    cmd = [sys.executable, str(HERE), '--child', variant, '--data', data, '--steps', str(args.steps),
           '--batch', str(args.batch), '--threads', str(args.threads)]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': str(args.threads)})
    line = next((l for l in p.stdout.splitlines() if l.startswith(MARK)), None)
    if p.returncode or line is None: raise RuntimeError(f'{variant} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}')
    return json.loads(line[len(MARK):])

def cpu_name()->str:
    for line in open('/proc/cpuinfo'):
        if line.startswith('model name'): return line.split(':', 1)[1].strip()
    return platform.processor() or platform.machine()

def summary(xs:list)->dict:
    return dict(median=statistics.median(xs), min=min(xs), max=max(xs), n=len(xs))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--reps', type=int, default=2); ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--batch', type=int, default=2); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--max-len', type=int, default=128); ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--variants', default=','.join(VARIANTS)); ap.add_argument('--json')
    ap.add_argument('--child'); ap.add_argument('--data')
    ap.add_argument('--first-rep', type=int, default=0, help='number of the first round (to rotate the order on)')
    ap.add_argument('--merge', help='only merge the runs of these JSON files (comma-separated) into --json')
    args = ap.parse_args()
    if args.child: return child(args)
    if args.merge: return merge(args)
    setup(args.threads)
    import torch, transformers, trl, tokenclean
    variants, t0, load0 = args.variants.split(','), time.time(), os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        data = str(Path(d)/'cleaned')
        info = make_export(Path(data), (args.steps + 1) * args.batch, args.seed, args.max_len)
        print(f"data: {info['samples']} samples, {info['tokens']:,} tokens, {info['kept']:,} kept", flush=True)
        runs = []
        for rep in range(args.first_rep, args.first_rep + args.reps):
            order = variants[rep % len(variants):] + variants[:rep % len(variants)]     # rotate: no variant always first
            for v in order:
                r = spawn(v, data, args); r['rep'] = rep; runs.append(r)
                print(f"rep {rep} {v:12s} {r['tokens_per_cpu_s']:7.1f} tok/CPU-s {r['tokens_per_s']:7.1f} tok/s "
                      f"train mem {r['train_mem_mb']:6.0f} MB peak RSS {r['peak_rss_mb']:6.0f} MB loss0 {r['first_loss']:.4f}",
                      flush=True)
    res = dict(machine=dict(cpu=cpu_name(), cores=os.cpu_count(), threads=args.threads,
                            torch=torch.__version__, transformers=transformers.__version__, trl=trl.__version__,
                            tokenclean=tokenclean.__version__, load_avg_start=load0, load_avg_end=os.getloadavg()),
               config=dict(model=MODEL, lora=dict(LORA, targets=TARGETS), batch=args.batch, steps=args.steps, reps=args.reps,
                           max_len=args.max_len, seed=args.seed, optimizer='torch AdamW, lr 1e-4 constant'),
               data=info, runs=runs, total_s=time.time() - t0)
    finish(res, variants, args.json)

def merge(args):
    "One result from several runs of this script with the same settings (each its own rounds), e.g. run in pieces."
    parts = [json.loads(Path(p).read_text()) for p in args.merge.split(',')]
    a = parts[0]
    for p in parts[1:]:
        assert p['config'] == {**a['config'], 'reps': p['config']['reps']} and p['data'] == a['data'], 'different settings'
    runs = [r for p in parts for r in p['runs']]
    variants = list(dict.fromkeys(r['variant'] for r in runs))
    res = dict(a, runs=runs, total_s=sum(p['total_s'] for p in parts), pieces=[p['machine'] for p in parts],
               config=dict(a['config'], reps=len({r['rep'] for r in runs})),
               machine=dict(a['machine'], load_avg_end=parts[-1]['machine']['load_avg_end']))
    finish(res, variants, args.json)

def finish(res:dict, variants:list, out:str|None):
    "Medians, spreads and per-round ratios of `res['runs']`; printed, and written to `out`."
    runs = res['runs']
    by = {v: sorted([r for r in runs if r['variant'] == v], key=lambda r: r['rep']) for v in variants}
    stats = {v: {k: summary([r[k] for r in rs]) for k in ('tokens_per_cpu_s', 'tokens_per_s', 'train_mem_mb', 'peak_rss_mb')}
             for v, rs in by.items()}
    ratios = {}
    for a, b in [('tc', 'trl_nll'), ('tc', 'trl_chunked'), ('tc_gc', 'trl_nll_gc'), ('tc', 'trl_nll_gc')]:
        if a not in by or b not in by: continue
        pair = list(zip(by[a], by[b]))                                       # the same round: adjacent in time
        ratios[f'{a}/{b}'] = dict(
            speed_cpu=summary([x['tokens_per_cpu_s'] / y['tokens_per_cpu_s'] for x, y in pair]),
            speed_wall=summary([x['tokens_per_s'] / y['tokens_per_s'] for x, y in pair]),
            train_mem=summary([x['train_mem_mb'] / y['train_mem_mb'] for x, y in pair]),
            peak_rss=summary([x['peak_rss_mb'] / y['peak_rss_mb'] for x, y in pair]))
    res.update(stats=stats, ratios=ratios)
    for k, r in ratios.items():
        print(f"{k:24s} speed (CPU) {r['speed_cpu']['median']:.2f}x [{r['speed_cpu']['min']:.2f}-{r['speed_cpu']['max']:.2f}]  "
              f"train memory {r['train_mem']['median']:.2f}x [{r['train_mem']['min']:.2f}-{r['train_mem']['max']:.2f}]  "
              f"peak RSS {r['peak_rss']['median']:.2f}x")
    if out: Path(out).write_text(json.dumps(res, indent=1) + '\n')

if __name__ == '__main__': main()
