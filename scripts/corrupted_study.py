"""Run (or resume) the corrupted-GSM8K experiment and write its committed results under nbs/assets/gsm8k_corrupted/.

Usage: OMP_NUM_THREADS=1 .venv/bin/python scripts/corrupted_study.py [--out runs/gsm8k_corrupted] [--collect]
"""
import argparse, time
from pathlib import Path
from tokenclean.core import set_threads
from tokenclean.controlled import collect
from tokenclean.corrupted import CorruptedConfig, run_corrupted

ASSETS = Path(__file__).resolve().parents[1]/'nbs'/'assets'/'gsm8k_corrupted'

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='runs/gsm8k_corrupted')
    ap.add_argument('--collect', action='store_true')
    a = ap.parse_args()
    set_threads()
    if not a.collect:
        t = time.time()
        run_corrupted(CorruptedConfig(), a.out, log=lambda s: (print(f'[{time.time() - t:6.0f} s] {s}', flush=True),
                                                                 collect(a.out, ASSETS)))
    print(f'collected {collect(a.out, ASSETS)} runs into {ASSETS}')
