"""Run (or resume) the controlled experiment and write its committed results under nbs/assets/controlled/.

Usage: OMP_NUM_THREADS=1 .venv/bin/python scripts/controlled_study.py [--out runs/controlled] [--seeds 41 42 43]
       [--collect]   (only gather what has finished into the assets folder)
"""
import argparse, time
from pathlib import Path
from tokenclean.core import set_threads
from tokenclean.controlled import ControlledConfig, run_controlled, collect

ASSETS = Path(__file__).resolve().parents[1]/'nbs'/'assets'/'controlled'

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='runs/controlled')
    ap.add_argument('--seeds', type=int, nargs='*')
    ap.add_argument('--collect', action='store_true')
    a = ap.parse_args()
    set_threads()
    if not a.collect:
        t = time.time()
        c = ControlledConfig(**({'seeds': a.seeds} if a.seeds else {}))
        run_controlled(c, a.out, log=lambda s: (print(f'[{time.time() - t:6.0f} s] {s}', flush=True), collect(a.out, ASSETS)))
    print(f'collected {collect(a.out, ASSETS)} runs into {ASSETS}')
