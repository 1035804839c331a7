"""Run (or resume) the corrupted-GSM8K experiment and write its committed results under nbs/assets/gsm8k_corrupted/.

Usage: OMP_NUM_THREADS=1 .venv/bin/python scripts/corrupted_study.py [--out runs/gsm8k_corrupted] [--collect]
"""
import argparse, shutil, time
from pathlib import Path
from tokenclean.core import load_json, save_json, set_threads
from tokenclean.controlled import long_results, rate_rows
from tokenclean.corrupted import CorruptedConfig, run_corrupted

ASSETS = Path(__file__).resolve().parents[1]/'nbs'/'assets'/'gsm8k_corrupted'

def collect(out:Path):
    "Gather every finished arm of `out` into the assets folder."
    results = [load_json(p) for p in sorted(out.glob('*/*/result.json'))]
    if not results: return
    ASSETS.mkdir(parents=True, exist_ok=True)
    long_results(results).to_csv(ASSETS/'items.csv.gz', index=False)
    rate_rows(results).to_csv(ASSETS/'selection.csv', index=False)
    for f in ('config.json', 'scores.npz'):
        if (out/f).exists(): shutil.copy(out/f, ASSETS/f)
    save_json({f"{r['experiment']}/{r['arm']}-s{r['seed']}": r['wall_s'] for r in results}, ASSETS/'wall_s.json')
    print(f'collected {len(results)} runs into {ASSETS}')

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='runs/gsm8k_corrupted')
    ap.add_argument('--collect', action='store_true')
    a = ap.parse_args()
    set_threads()
    if not a.collect:
        t = time.time()
        run_corrupted(CorruptedConfig(), a.out, log=lambda s: (print(f'[{time.time() - t:6.0f} s] {s}', flush=True),
                                                                 collect(Path(a.out))))
    collect(Path(a.out))
