#!/usr/bin/env python
"""What scoring the reference as a merged model changes, for the original approach and for tokenclean, in one process.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/reference_merge.py [--limit 12] [--reps 1] [--json OUT]

The authors' `calculate_token_loss.py` loads the reference as a plain model (their warm-up's LoRA adapter merged into
the weights), so it costs what the base costs. An earlier copy of their approach (`orig_scores`) scored it with the
adapter live, as tokenclean then did too (a `PeftModel`: one copy of the weights for the base and the reference);
tokenclean now merges it for the reference's pass (`merged_adapter`, the weights put back bit for bit after). This
times, on the first `--limit` of the authors' chats (the benchmark's model: LoRA r 64 on every layer, B non-zero), the
original and tokenclean's passes (`token_losses`'s batches), each with the reference live and merged, interleaved, in
CPU seconds. The ratios it writes say by how much the benchmark's earlier figure moves; they are not the benchmark.
"""
from __future__ import annotations
import argparse, contextlib, json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark as B

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--limit', type=int, default=12); ap.add_argument('--reps', type=int, default=1)
    ap.add_argument('--threads', type=int, default=1); ap.add_argument('--model', default='smollm2-135m-instruct')
    ap.add_argument('--json', default=None)
    args = ap.parse_args()
    torch = B.setup(args.threads)
    import numpy as np
    from tokenclean.scoring import _shard_losses
    from tokenclean.models import adapter_off, merged_adapter
    tp = B.fixtures(args.limit)
    model = B.scoring_model(torch, args)
    def tc_pass(ctx):
        with ctx: recs = _shard_losses(model, tp.rows, 0, 8192)
        return np.concatenate([np.asarray(r['loss'], np.float64) for r in recs if r['loss']])
    def tc_run(ref):
        return lambda: tc_pass(adapter_off(model)) - tc_pass(ref())
    runs = dict(orig_live=lambda: np.asarray(B.orig_scores(model, tp.rows, 0, 4, merged=False)[0]),
                tc_live=tc_run(contextlib.nullcontext), tc=tc_run(lambda: merged_adapter(model)),
                orig_merged=lambda: np.asarray(B.orig_scores(model, tp.rows, 0, 4, merged=True)[0]))
    res, scores = dict(cpu=B.cpu_name(), threads=args.threads, chats=len(tp), load_start=B.load(), seconds={}), {}
    for _ in range(args.reps):
        for name, f in runs.items():
            t = time.process_time(); scores[name] = f(); s = time.process_time() - t
            res['seconds'].setdefault(name, []).append(round(s, 2)); print(name, round(s, 1), flush=True)
    best = {k: min(v) for k, v in res['seconds'].items()}
    res.update(load_end=B.load(), best=best,
               orig_merged_vs_live=best['orig_merged'] / best['orig_live'],
               tc_merged_vs_live=best['tc'] / best['tc_live'],
               ratio_live=best['orig_live'] / best['tc_live'], ratio_merged=best['orig_merged'] / best['tc'],
               max_abs_diff={k: float(np.abs(scores[k] - scores['orig_live']).max()) for k in scores})
    print(json.dumps(res, indent=1))
    if args.json: Path(args.json).write_text(json.dumps(res, indent=1) + '\n')

if __name__ == '__main__': main()
