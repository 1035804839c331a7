"""Run (or resume) the controlled experiment and write its committed results under nbs/assets/controlled/.

Usage: OMP_NUM_THREADS=1 .venv/bin/python scripts/controlled_study.py [--out runs/controlled] [--seeds 41 42 43]
       [--collect]   (only gather what has finished into the assets folder)
"""
import argparse, shutil, time
from dataclasses import asdict
from pathlib import Path
from tokenclean.core import load_json, save_json, set_threads
from tokenclean.controlled import ControlledConfig, run_controlled, long_results, rate_rows

ASSETS = Path(__file__).resolve().parents[1]/'nbs'/'assets'/'controlled'

def collect(out:Path):
    "Gather every finished arm of `out` into the assets folder."
    results = [load_json(p) for p in sorted(out.glob('*/*/result.json'))]
    ASSETS.mkdir(parents=True, exist_ok=True)
    long_results(results).to_csv(ASSETS/'items.csv.gz', index=False)
    rate_rows(results).to_csv(ASSETS/'selection.csv', index=False)
    for f in ('config.json', 'scores.npz', 'scores_failure.npz'):
        if (out/f).exists(): shutil.copy(out/f, ASSETS/f)
    save_json({f"{r['experiment']}/{r['arm']}-s{r['seed']}": r['wall_s'] for r in results}, ASSETS/'wall_s.json')
    print(f'collected {len(results)} runs into {ASSETS}')

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='runs/controlled')
    ap.add_argument('--seeds', type=int, nargs='*')
    ap.add_argument('--collect', action='store_true')
    a = ap.parse_args()
    set_threads()
    c = ControlledConfig(**({'seeds': a.seeds} if a.seeds else {}))
    if not a.collect:
        t = time.time()
        run_controlled(c, a.out, log=lambda s: (print(f'[{time.time() - t:6.0f} s] {s}', flush=True), collect(Path(a.out))))
    collect(Path(a.out))
