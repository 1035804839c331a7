"""Run (or resume) the real-text study, design v2 (nbs/studies/04_real_pool.ipynb), seed by seed, committing each seed.

  OMP_NUM_THREADS=1 .venv/bin/python scripts/real_text.py                      # one process, every seed
  OMP_NUM_THREADS=1 .venv/bin/python scripts/real_text.py --worker 0/2 &       # two processes: the (seed, arm) runs
  OMP_NUM_THREADS=1 .venv/bin/python scripts/real_text.py --worker 1/2 &       # split by position, seed 41's first
  ... --part rules        amendment 1 (issue 22): the token-rule arms of configs/studies/real_text_rules.yaml, seed by
                          seed, into ASSETS/items-rules-s<seed>.csv.gz (run after the main study)
  ... --pilot fp32|bf16   the pilot (reference A, a 48-sample pool, one seed, 40 items per task) at that training
                          precision: nbs/assets/real_text/pilot-<p>/

Both references (configs/studies/real_text_a.yaml, real_text_b.yaml) run through `run_study`; the shared stages
(warm-ups, scoring, base) run once under a file lock; once the base's and the references' items are committed they
are not evaluated again (a new checkout warms up and scores again, and checks that its references select what the
committed ones did: reference_check.json). Each trained arm is committed as it finishes, into ASSETS/parts/ (a run
cache under runs/ does not outlive a session); when a seed's arms are all done they become ASSETS/items-s<seed>.csv.gz
(long format: experiment, arm, seed, item, metric, value, reference, cluster, task) and runs-s<seed>.json (steps,
tokens, wall times, CPU). A finished seed or arm is skipped; an interrupted arm resumes from the run cache if it has one.
"""
import argparse, dataclasses, fcntl, json, subprocess, time
from functools import partial
import pandas as pd
import yaml
from pathlib import Path
from tokenclean.core import set_threads, Timer, save_json, load_json, atomic_path
from tokenclean.config import load_config, preflight
from tokenclean.stages import score_pool, warmup_reference
from tokenclean.study import Study, with_adapter, _losses
from tokenclean.selection import reference_check
from tokenclean.studies.real_pool import (prepare, seedless_items, trained_arms, arm_items, write_items, cpu_model,
                                         contamination, reference_name)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT/'configs'/'studies'/f'real_text_{r}.yaml' for r in 'ab']
PARTS = dict(main=CONFIGS, rules=[ROOT/'configs'/'studies'/'real_text_rules.yaml'])   # what each part trains per seed
PILOT = dict(generator_args=dict(n_pool=48, n_heldout=24, n_warmup=12, n_drift=24, max_tokens=320), eval_limit=40,
             seeds=[41])
PILOT_METHODS = dict(fp32=['base', 'full', 'random'], bf16=['base', 'full', 'random', 'fixed'])

def log(*a): print(time.strftime('%H:%M:%S'), *a, flush=True)

def commit(paths:list, msg:str, tries:int=30):
    "Commit only `paths` (retrying while another process holds git's index lock)."
    for _ in range(tries):
        add = subprocess.run(['git', 'add', '--', *map(str, paths)], cwd=ROOT, capture_output=True, text=True)
        if add.returncode == 0:
            c = subprocess.run(['git', 'commit', '-m', msg, '--', *map(str, paths)], cwd=ROOT, capture_output=True,
                               text=True)
            if c.returncode == 0 or 'nothing to commit' in c.stdout + c.stderr: return log('committed:', msg)
            if 'index.lock' not in c.stderr: return log('commit failed:', c.stderr.strip()[:300])
        elif 'index.lock' not in add.stderr: return log('git add failed:', add.stderr.strip()[:300])
        time.sleep(5)
    log('commit gave up (index.lock)')

def compare_check(now:dict, committed:dict, tol:float=1e-3)->str:
    "How the re-trained references' selection statistics compare with the committed ones (exactly, to rounding, not)."
    if now == committed: return 'references select as the committed ones did'
    if now.keys() != committed.keys() or any(now[r].keys() != committed[r].keys() for r in now):
        return f'WARNING: the reference check has other fields than the committed one: {now}'
    gap = max(abs(now[r][k] - committed[r][k]) for r in now for k in now[r])
    if gap <= tol: return (f'references agree with the committed ones to {gap:.1e} (float rounding: another CPU, '
                           'amendment 3), not bit for bit')
    return f'WARNING: the references differ from the committed ones by up to {gap:.3g}: {now}'

def references_first(cfgs:list, i:int, n:int):
    """With several workers, worker i warms up reference i and scores the pool with it (worker 0 with the base too)
    before the shared stages, holding `.ref-<i>.lock`, then waits for every worker's: the shared stages, one process at
    a time, find them cached (one worker alone does them all there, as before)."""
    if n < 2: return
    out = Path(cfgs[0].out)
    if i < len(cfgs):
        with open(out/f'.ref-{i}.lock', 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            st = Study(preflight(cfgs[i]))
            with Timer() as t:
                ref = with_adapter(st, warmup_reference(st))
                if i == 0: _losses(st, ref, st.pool, adapter=False, desc='score: base')
                _losses(st, ref, st.pool, adapter=True, desc='score: reference')
            log(f'{reference_name(cfgs[i])}: warmed up and scored in {t.s/60:.1f} min')
    for j in range(len(cfgs)):
        with open(out/f'.ref-{j}.lock', 'w') as lock: fcntl.flock(lock, fcntl.LOCK_EX)   # every worker's reference

def part(assets:Path, name:str, kind:str='items', ext:str='csv.gz')->Path:
    "One run's `kind` file in ASSETS/parts/ (`items` is written last: its presence marks the run done)."
    return assets/'parts'/f'{kind}-{name}.{ext}'

def write_part(v, path:Path)->Path:
    "Write a DataFrame as gzipped CSV, anything else as JSON, atomically."
    if not isinstance(v, pd.DataFrame): return save_json(v, path)
    with atomic_path(path) as tmp: v.to_csv(tmp, index=False, compression='gzip')
    return path

def join_runs(js:list):
    "Merge the `runs` JSON of a unit's parts: lists are concatenated; dicts add their `runs` lists and seconds."
    if all(isinstance(j, list) for j in js): return [r for j in js for r in j]
    return dict(runs=[r for j in js for r in j['runs']], wall_s=round(sum(j['wall_s'] for j in js), 1),
                cpu_s=round(sum(j['cpu_s'] for j in js), 1), cpu=cpu_model())

def merge_parts(assets:Path, tag:str, names:list, kinds:dict)->list:
    "Merge the parts of `names` into ASSETS/<kind>-<tag>.<ext> (items last), remove them; the merged paths."
    out = []
    for kind, ext in sorted(kinds.items(), key=lambda kv: kv[0] == 'items'):
        if ext == 'json': v = join_runs([load_json(part(assets, x, kind, ext)) for x in names])
        else: v = pd.concat([pd.read_csv(part(assets, x, kind, ext), dtype={'item': str}) for x in names],
                            ignore_index=True)
        out.append(write_part(v, assets/f'{kind}-{tag}.{ext}'))
    for x in names:
        for kind, ext in kinds.items(): part(assets, x, kind, ext).unlink()
    return out

def run_parts(runs:list, i:int, n:int, assets:Path, lock_dir:Path, no_commit:bool, msg:str):
    """Run this worker's share (positions i, i+n, ...) of `runs`, [(tag, name, run)], where `run()` gives the files of
    one run, {kind: DataFrame or JSON}, `items` among them; commit each into ASSETS/parts/ as it finishes; the worker
    that finishes a tag's last run merges its parts into ASSETS/<kind>-<tag>.<ext> under a lock and commits that."""
    for tag, nm, run in runs[i::n]:
        if (assets/f'items-{tag}.csv.gz').exists() or part(assets, nm).exists(): continue
        log(f'{nm}: running')
        t0 = time.time()
        files = run()
        kinds = {k: 'csv.gz' if isinstance(v, pd.DataFrame) else 'json' for k, v in files.items()}
        (assets/'parts').mkdir(parents=True, exist_ok=True)
        for k in sorted(files, key=lambda k: k == 'items'): write_part(files[k], part(assets, nm, k, kinds[k]))
        log(f"{nm}: {len(files['items'])} rows in {(time.time() - t0)/60:.1f} min")
        paths = [assets/'parts']
        with open(lock_dir/'.merge.lock', 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)                   # a tag's last run merges its parts, once
            names = [x for t, x, _ in runs if t == tag]
            if all(part(assets, x).exists() for x in names) and not (assets/f'items-{tag}.csv.gz').exists():
                paths = merge_parts(assets, tag, names, kinds) + [assets/'parts']
                log(f'{tag}: all {len(names)} runs merged')
            if not no_commit: commit(paths, f'{msg}: {tag} ({nm})')

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--worker', default='0/1', help='i/n: this process runs the (seed, arm) runs at positions i, i+n, ...')
    ap.add_argument('--assets', default=str(ROOT/'nbs'/'assets'/'real_text'))
    ap.add_argument('--pilot', choices=['fp32', 'bf16'], help='the pilot at this training precision')
    ap.add_argument('--part', choices=list(PARTS), default='main',
                    help='main: the pre-registered arms; rules: amendment 1')
    ap.add_argument('--no-commit', action='store_true')
    ap.add_argument('--set', action='append', default=[], metavar='KEY=YAML',
                    help='override a config key (both presets)')
    a = ap.parse_args()
    i, n = map(int, a.worker.split('/'))
    threads = set_threads()
    over = dict(PILOT, precision=a.pilot, out=f'runs/real_text_pilot-{a.pilot}') if a.pilot else {}
    over.update({k: yaml.safe_load(v) for k, v in (kv.split('=', 1) for kv in a.set)})
    cfgs = [load_config(p, **over) for p in CONFIGS]
    if a.pilot: cfgs = [dataclasses.replace(cfgs[0], methods=PILOT_METHODS[a.pilot])]   # reference A only
    trained = cfgs if a.part == 'main' else [load_config(p, **over) for p in PARTS[a.part]]
    tag = '' if a.part == 'main' else f'{a.part}-'
    assets = Path(a.assets)/(f'pilot-{a.pilot}' if a.pilot else '')
    assets.mkdir(parents=True, exist_ok=True)
    log(f'worker {i}/{n}, {threads} thread(s), {cpu_model()}, precision {cfgs[0].precision}, assets {assets}')
    Path(cfgs[0].out).mkdir(parents=True, exist_ok=True)
    references_first(cfgs, i, n)                              # the references in parallel
    with open(Path(cfgs[0].out)/'.prepare.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)                       # the shared stages: one process at a time
        done = (assets/'items-seedless.csv.gz').exists()
        sts, wall = prepare(cfgs, evaluate=not done)
        c = cfgs[0]
        check = {r: dict(reference_check(score_pool(st), c.k), pool=len(st.pool), heldout=len(st.heldout),
                         warmup=len(st.warmup)) for r, st in sts.items()}
        if not done:
            log(f"prepared: {wall}")
            items, recs = seedless_items(cfgs, sts)
            write_items(items, recs, assets, 'seedless')
            save_json(dict(wall_s=wall, cpu=cpu_model(), threads=threads), assets/"prepare.json")
            save_json(contamination(next(iter(sts.values())), c.eval_tasks, c.eval_limit), assets/'contamination.json')
            save_json(check, assets/'reference_check.json')
            if not a.no_commit: commit([assets], f'real-text study: base and references ({assets.name})')
        else:
            log(f"prepared (warm-ups and scoring only): {wall}")
            log(compare_check(json.loads(json.dumps(check, default=str)),
                              json.loads((assets/'reference_check.json').read_text())))
        fcntl.flock(lock, fcntl.LOCK_UN)
    units = [(seed, c, m) for seed in cfgs[0].seeds for c, m in trained_arms(trained)]   # seed by seed, arm by arm
    def run(c, seed, m):
        with Timer() as t: items, recs = arm_items(c, sts, seed, m)
        return dict(runs=[dict(r, arm_wall_s=round(t.s, 1)) for r in recs], items=items)
    runs = [(f'{tag}s{seed}', f'{tag}s{seed}-{reference_name(c)}-{m}', partial(run, c, seed, m))
            for seed, c, m in units]
    run_parts(runs, i, n, assets, Path(cfgs[0].out), a.no_commit, f'real-text study: {a.part}')
    log('finished')

if __name__ == '__main__': main()
