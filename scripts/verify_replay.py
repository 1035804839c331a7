# Run from the repository root: .venv/bin/python scripts/verify_replay.py (after the base has been evaluated).
"""Reference A evaluated again with the layer replay (states stored by the base's evaluation), against its committed
items computed without replay last session: every per-item value must be equal, bit for bit."""
import time, pandas as pd, tempfile
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
             reuse=spec)
    wall = time.perf_counter() - t0
    new = pd.read_csv(Path(d)/'items.csv.gz')
key = ['task', 'item', 'metric']
j = old.merge(new, on=key, suffixes=('_old', '_new'))
print(f'{len(old)} rows before, {len(new)} now, {len(j)} matched; equal: {(j.value_old == j.value_new).mean():.6f}; '
      f'max |diff| {(j.value_old - j.value_new).abs().max():.3g}; wall {wall:.0f} s')
