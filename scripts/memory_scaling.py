"""Peak memory of reading scores and selecting tokens, as a function of pool size (no model needed).

Usage: .venv/bin/python scripts/memory_scaling.py [--tokens-per-sample 300] [--sizes 1000 4000 16000]
Each size runs in a fresh subprocess: it writes synthetic base/reference loss stores (as scoring
would, shard by shard), then reads both, joins them into Scores and makes a global top-60%
selection, and reports the peak RSS above the interpreter's baseline.
"""
import argparse, json, resource, subprocess, sys, tempfile

CHILD = r'''
import json, resource, sys, tempfile, numpy as np
from pathlib import Path
from tokenclean.core import save_json
from tokenclean.scoring import LossStore, join_scores
from tokenclean.selection import select
n, per = int(sys.argv[1]), int(sys.argv[2])
root = Path(tempfile.mkdtemp()); rng = np.random.default_rng(0)
class TP: pass
tp = TP(); tp.rows = [dict(id=f's{i}', source='x') for i in range(n)]
base0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for name in ('base', 'ref'):
    st = LossStore(root/name); shard = 256
    for s in range(0, n, shard):
        st.write_shard(s // shard, [dict(id=f's{i}', pos=list(range(1, per + 1)), token=np.random.default_rng(i).integers(0, 50000, per).tolist(),
                                         loss=rng.random(per).astype(np.float32).tolist()) for i in range(s, min(s + shard, n))])
    save_json(dict(n_shards=(n + shard - 1) // shard), st.path/'meta.json')
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sc = join_scores(tp, LossStore(root/'base').read(), LossStore(root/'ref').read())
sel = select(sc, 'global', 0.6)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(samples=n, tokens=len(sc), write_peak_mb=(before - base0) / 1024, read_select_peak_mb=(after - before) / 1024)))
'''

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--tokens-per-sample', type=int, default=300)
    p.add_argument('--sizes', type=int, nargs='+', default=[1000, 4000, 16000])
    a = p.parse_args(); rows = []
    for n in a.sizes:
        out = subprocess.run([sys.executable, '-c', CHILD, str(n), str(a.tokens_per_sample)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{r['samples']:>7,} samples {r['tokens']:>11,} tokens: read+join+select peak +{r['read_select_peak_mb']:.0f} MB "
              f"({r['read_select_peak_mb'] * 2**20 / r['tokens']:.0f} bytes/token); writing shards +{r['write_peak_mb']:.0f} MB")
    print(json.dumps(rows))
