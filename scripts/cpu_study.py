"""Run (or resume) the real-pool CPU study of nbs/14_study_cpu.ipynb and write its committed results.

Usage: OMP_NUM_THREADS=1 .venv/bin/python scripts/cpu_study.py [--config nbs/assets/study_cpu.yaml]
Writes nbs/assets/study_cpu/: items.csv.gz (per held-out sample NLL, long format), tokens.npz (per held-out token),
results.json, check.json, scores.parquet, config.yaml, wall_s.json. A finished study is re-collected from its cache.
"""
import argparse, time
from pathlib import Path
from tokenclean.core import set_threads
from tokenclean.config import load_config
from tokenclean.realpool import run_real_study

ROOT = Path(__file__).resolve().parents[1]

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--config', default=str(ROOT/'nbs'/'assets'/'study_cpu.yaml'))
    a = ap.parse_args()
    set_threads()
    t0 = time.time()
    res = run_real_study(load_config(a.config), ROOT/'nbs'/'assets'/'study_cpu', a.config,
                         log=lambda s: print(f'[{time.time() - t0:6.0f} s] {s}', flush=True))
    print(f'{len(res)} results collected; {time.time() - t0:.0f} s')
