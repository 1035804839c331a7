"""The controlled experiment's design v1 run twice at small size with the same seed: by the old second pipeline
(`tokenclean.controlled`, tokenclean 0.1.0) and by the one `Study` (configs/studies/controlled.yaml); writes the
per-item differences and the selection rates of both.

Usage: OMP_NUM_THREADS=1 .venv/bin/python scripts/compare_controlled.py OUT [ASSETS] [MODEL]
"""
import sys, time
from pathlib import Path
import pandas as pd
from tokenclean.core import set_threads, save_json
from tokenclean import controlled as old
from tokenclean.config import load_config
from tokenclean.pipelines import run_study
from tokenclean.study import Study

SIZE = dict(pool=48, warmup=32, heldout=40, greedy=20)
SEED = 41
NAMES = dict(answer_nll='span_nll:informative', exact_match='span_exact:informative',
             misleading_answer='span_exact:misleading')
KEYS = ['experiment', 'arm', 'seed', 'item', 'metric']

def run_old(out:Path, model:str):
    c = old.ControlledConfig(model=model, seeds=[SEED], **SIZE)
    res = old.run_controlled(c, out)
    items = old.long_results(res)
    items['metric'] = items.metric.map(NAMES)
    items.loc[items.metric == 'span_exact:misleading', 'item'] += '-wrong'   # the new held-out set names the copy
    return items, {(r['experiment'], r['arm']): r['rates'] for r in res}

def run_new(out:Path, model:str):
    args = dict(SIZE, n_keys=12, n_filler=200, mislead=0.3, fail_mislead=0.6, world_seed=0)
    base = dict(model=model, generator_args=args, seeds=[SEED], out=str(out))
    cfgs = [load_config('configs/studies/controlled.yaml', **base),
            load_config('configs/studies/controlled.yaml', **base, warmup='@warmup_failure', methods=['fixed'],
                        experiment='controlled_failure')]
    items, rates = [], {}
    for cfg in cfgs:
        res = run_study(cfg)
        items.append(pd.read_csv(Study(cfg).path(f'items-{cfg.experiment}.csv')))
        rates.update({(cfg.experiment, r['method']): r.get('rates') for r in res if r['method'] != 'reference'})
    return pd.concat(items, ignore_index=True), rates

def main(out:str, assets:str='nbs/assets/controlled/v1_vs_study', model:str='smollm2-135m-instruct'):
    set_threads(1)
    out, assets = Path(out), Path(assets)
    t0 = time.time(); o, ro = run_old(out/'old', model); t_old = time.time() - t0
    t0 = time.time(); n, rn = run_new(out/'new', model); t_new = time.time() - t0
    n = n[n.metric.isin(NAMES.values()) & (n.arm != 'reference')]
    m = o.merge(n, on=KEYS, how='outer', suffixes=('_old', '_new'), indicator=True)
    m['diff'] = m.value_new - m.value_old
    assets.mkdir(parents=True, exist_ok=True)
    m.drop(columns='_merge').to_csv(assets/'items.csv.gz', index=False)
    s = m.groupby(['experiment', 'arm', 'metric']).agg(n=('diff', 'size'),
                                                        only_one=('_merge', lambda x: (x != 'both').sum()),
                                                        nonzero=('diff', lambda d: int((d.abs() > 0).sum())),
                                                        max_abs=('diff', lambda d: float(d.abs().max())),
                                                        mean_diff=('diff', 'mean')).reset_index()
    s.to_csv(assets/'summary.csv', index=False)
    keys = sorted(set(ro) | set(rn))
    rates = pd.DataFrame([dict(experiment=e, arm=a, pipeline=p, **{k: v for k, v in (r.get((e, a)) or {}).items()})
                          for e, a in keys for p, r in (('old', ro), ('new', rn))])
    rates.to_csv(assets/'rates.csv', index=False)
    save_json(dict(model=model, seed=SEED, size=SIZE, wall_s=dict(old=round(t_old), new=round(t_new)),
                   command=' '.join(['.venv/bin/python'] + sys.argv)), assets/'run.json')
    print(s.to_string())

if __name__ == '__main__': main(*sys.argv[1:])
