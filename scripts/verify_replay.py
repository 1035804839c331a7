# Run from the repository root (after the base's evaluation): .venv/bin/python scripts/verify_replay.py [--continuations]
"""Reference A evaluated again with the layer replay (states stored by the base's evaluation), against its committed
items computed without replay: every per-item value must be equal, bit for bit (lm-eval's `HFLM`, the head at every
position). With --continuations, by `continuation_lm` (the head only where a continuation is read), as studies now
evaluate: the items must agree to float rounding, and every accuracy must be equal."""
import sys, time, pandas as pd, tempfile
from pathlib import Path
from tokenclean.core import set_threads
set_threads(1)
from tokenclean.config import load_config
from tokenclean.study import Study, with_adapter, reuse_spec
from tokenclean.stages import warmup_reference, reference_dir
from tokenclean.evaluation import evaluate
st = Study(load_config('configs/studies/real_text_a.yaml', out='runs/real_text', progress=False))
m = with_adapter(st, warmup_reference(st))
spec = reuse_spec(st, m)
print('reuse', spec, sorted(p.name for p in spec[1].glob('*.pt')))
old = pd.read_csv(reference_dir(st)/'lm_eval'/'items.csv.gz')
with tempfile.TemporaryDirectory() as d:
    t0 = time.perf_counter()
    evaluate(m, st.tok, st.cfg.eval_tasks, limit=st.cfg.eval_limit, seed=st.cfg.reference_seed, output_path=d,
             meta=dict(method='reference', data=st.cfg.pool, seed=st.cfg.reference_seed, pool_key=st.pool.key),
             reuse=spec, all_logits='--continuations' not in sys.argv)
    wall = time.perf_counter() - t0
    new = pd.read_csv(Path(d)/'items.csv.gz')
key = ['task', 'item', 'metric']
j = old.merge(new, on=key, suffixes=('_old', '_new'))
print(f'{len(old)} rows before, {len(new)} now, {len(j)} matched; equal: {(j.value_old == j.value_new).mean():.6f}; '
      f'max |diff| {(j.value_old - j.value_new).abs().max():.3g}; wall {wall:.0f} s')
for m, g in j.groupby('metric'):
    dv = g.value_new - g.value_old
    print(f'{m}: {len(g)} rows, equal {(dv == 0).mean():.6f}, max |diff| {dv.abs().max():.3g}, '
          f'mean diff (new - old) {dv.mean():.3g} (SE {dv.std() / len(dv) ** 0.5:.2g})')
