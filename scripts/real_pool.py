"""Run (or resume) design v1 of the real-pool study (nbs/studies/04_real_pool.ipynb) and collect its results.

Design v2, the study at the paper's claim level, is scripts/real_text.py.

Usage: OMP_NUM_THREADS=1 .venv/bin/python scripts/real_pool.py [--config configs/studies/real_pool.yaml]
                                                               [--assets nbs/assets/real_pool]
Writes ASSETS/: items.csv.gz (per held-out sample, long format), tokens.npz (per held-out token), results.json,
check.json, scores.parquet, config.yaml, wall_s.json. A finished study is re-collected from its cache.
"""
import argparse
from pathlib import Path
from tokenclean.core import set_threads
from tokenclean.config import load_config
from tokenclean.studies.real_pool import run_real_study

ROOT = Path(__file__).resolve().parents[1]

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--config', default=str(ROOT/'configs'/'studies'/'real_pool.yaml'))
    ap.add_argument('--assets', default=str(ROOT/'nbs'/'assets'/'real_pool'))
    a = ap.parse_args()
    set_threads()
    print(f'{len(run_real_study(load_config(a.config), a.assets, a.config))} results collected into {a.assets}')
