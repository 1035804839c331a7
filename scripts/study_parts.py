"""Run (or resume) any study config through the one pipeline run by run, committing each run as it finishes.

  OMP_NUM_THREADS=1 .venv/bin/python scripts/study_parts.py --config configs/studies/gsm8k_corrupted.yaml \
      --assets nbs/assets/gsm8k_corrupted/v2 [--worker i/n] [--set key=value ...]

What `tokenclean study --config X` computes, in the same rows (`study_items`), but written and committed as it goes
(the run cache under `out` does not outlive a session, and the CLI writes its items only at the end). The shared
stages run once under a file lock: the reference's warm-up and the pool's scores, and, unless ASSETS already holds
them, the reference's and the base's evaluation, written to ASSETS/items-seedless.csv.gz and runs-seedless.json, with
ASSETS/scores.npz (every pool token's base and reference loss, and its kind code where the pool is annotated: the
code indexes the pool's `kinds`, −1 for none). Each trained (seed, method) run is committed into ASSETS/parts/; the
worker that finishes a seed's last run merges them into items-s<seed>.csv.gz and runs-s<seed>.json (`run_parts`).
A finished seed or run is skipped; an interrupted run resumes from the run cache if it has one.
"""
import argparse, fcntl
from functools import partial
from pathlib import Path
import numpy as np
from tokenclean.core import set_threads, save_json
from tokenclean.cli import resolve_config
from tokenclean.config import preflight
from tokenclean.study import Study, SEEDLESS
from tokenclean.stages import score_pool, reference_result, base_result
from tokenclean.selection import score_kinds
from tokenclean.pipelines import study_items, needs_scores, run_method
from tokenclean.studies.real_pool import run_record, cpu_model
from real_text import log, commit, run_parts, write_part   # the real-text runner's (this folder)

def shared(st:Study, assets:Path, no_commit:bool):
    "The reference and the base once, into ASSETS (unless there already); the pool's scores (None if no arm uses them)."
    c = st.cfg
    sc = score_pool(st) if needs_scores(c.methods) else None
    if (assets/'items-seedless.csv.gz').exists(): return sc
    res = [reference_result(st)] + ([base_result(st)] if 'base' in c.methods else [])
    paths = [write_part(study_items(st, res), assets/'items-seedless.csv.gz'),
             save_json([run_record(st, r) for r in res], assets/'runs-seedless.json')]
    if sc is not None:
        kind = dict(kind=score_kinds(sc, st.pool.rows).astype(np.int8), kinds=np.array(st.pool.kinds)) \
            if st.pool.kinds else {}
        np.savez_compressed(assets/'scores.npz', base=sc.base, ref=sc.ref, **kind)
        paths.append(assets/'scores.npz')
    log(f'{c.experiment}: reference and base written')
    if not no_commit: commit(paths, f'{c.experiment}: reference and base ({assets})')
    return sc

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--config', required=True, help='a study config (YAML) or preset')
    ap.add_argument('--assets', required=True, help='folder for the committed per-item files')
    ap.add_argument('--worker', default='0/1',
                    help='i/n: this process runs the (seed, method) runs at positions i, i+n, ...')
    ap.add_argument('--no-commit', action='store_true')
    ap.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='override a config key')
    a = ap.parse_args()
    i, n = map(int, a.worker.split('/'))
    threads = set_threads()
    st = Study(preflight(resolve_config(a.config, a.set)))
    c, assets = st.cfg, Path(a.assets)
    assets.mkdir(parents=True, exist_ok=True)
    log(f'{c.experiment}: worker {i}/{n}, {threads} thread(s), {cpu_model()}, {assets}')
    Path(c.out).mkdir(parents=True, exist_ok=True)
    with open(Path(c.out)/'.prepare.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)                       # the shared stages: one process at a time
        sc = shared(st, assets, a.no_commit)
        fcntl.flock(lock, fcntl.LOCK_UN)
    def run(seed, m):
        r = run_method(st, m, seed, sc)
        return dict(runs=[run_record(st, r)], items=study_items(st, [r]))
    runs = [(f's{seed}', f's{seed}-{m}', partial(run, seed, m)) for seed in c.seeds for m in c.methods
            if m not in SEEDLESS]
    run_parts(runs, i, n, assets, Path(c.out), a.no_commit, c.experiment)
    log('finished')

if __name__ == '__main__': main()
