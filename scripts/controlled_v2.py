"""Run (or resume) the controlled experiment, design v2 (nbs/studies/02_controlled.ipynb), arm by arm, committing.

  nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python scripts/controlled_v2.py                # every seed, one process
  nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python scripts/controlled_v2.py --worker 0/2 & # two processes: the
  nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python scripts/controlled_v2.py --worker 1/2 & # (seed, arm) runs alternate
  ... --part dose [--worker i/n]   the dose-response grid (configs/studies/dose_response.yaml): seed 41, fixed at
                                   k in DOSE_K under each warm-up size, random (and full) once; workers alternate
                                   its runs. Run it after the main part's seed 41 has finished: its k 0.6 cells under
                                   the 200-sample warm-up are design v2's seed-41 runs, read from the run cache in the
                                   same session (run at the same time, both processes could train them into one folder)
  ... --pilot                      the pilot: a 240-sample pool (the full-size warm-ups), 120 held-out prompts, seed 41,
                                   base, reference, full and fixed, the failure reference's planned selection; into
                                   ASSETS/pilot/ (with wall and CPU times per stage)

Design v2 is configs/studies/controlled_v2.yaml and its failure case controlled_v2_failure.yaml, both through
`run_study`. The shared stages (data, warm-ups, scoring, base, references) run first under a file lock and write
ASSETS/items-seedless.csv.gz and planned-seedless.csv.gz (what fixed would keep under each reference, before any arm
trains). Each trained arm is committed as it finishes, into ASSETS/parts/ (the run cache, runs/controlled_v2, does
not outlive a session); when a seed's arms are all there they become ASSETS/items-s<seed>.csv.gz (long format:
experiment, arm, seed, item, metric, value, cluster, reference, k), selection-s<seed>.csv.gz (each run's kept share of
every kind and coverage group, trained tokens, steps) and runs-s<seed>.json (wall times, CPU). Only ASSETS is
committed. A finished seed or arm is skipped; an interrupted arm resumes from the run cache if it has one. The
pre-registration is ASSETS/preregistration.md.
"""
import argparse, dataclasses, fcntl, resource, time
from functools import partial
from pathlib import Path
import yaml
from tokenclean.core import set_threads, save_json, load_json
from tokenclean.config import load_config
from tokenclean.studies.controlled import v2_seedless, v2_arms, v2_arm, reference_of, dose_configs, dose_warmups, DOSE_K
from tokenclean.study import Study
from tokenclean.studies.real_pool import cpu_model, run_record
from real_text import log, commit, run_parts, write_part   # the real-text runner's (this folder)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT/'configs'/'studies'/f'{n}.yaml' for n in ('controlled_v2', 'controlled_v2_failure')]
DOSE = ROOT/'configs'/'studies'/'dose_response.yaml'
PILOT_ARGS = dict(pool=240, heldout=120, greedy=60, warmup_sizes=[])

def cpu_s()->float:
    "CPU seconds this process has used (user + system)."
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

def record(c, seed:int, method:str)->dict:
    "Run record (steps, tokens, train and evaluation wall times, CPU) of one trained run."
    st = Study(dataclasses.replace(c, seeds=[seed]))
    return dict(run_record(st, load_json(st.run_dir(method, seed)/'results.json')), experiment=c.experiment, k=c.k,
                warmup=c.warmup)

def shared(cfgs:list, assets:Path, name:str, no_commit:bool):
    "The shared stages of `cfgs` once (under a file lock): items and planned selections of the base and references."
    Path(cfgs[0].out).mkdir(parents=True, exist_ok=True)
    with open(Path(cfgs[0].out)/'.prepare.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (assets/f'items-{name}.csv.gz').exists():
            t0, c0 = time.time(), cpu_s()
            items, planned = v2_seedless(cfgs)
            write_part(planned, assets/f'planned-{name}.csv.gz')
            write_part(items, assets/f'items-{name}.csv.gz')
            save_json(dict(wall_s=round(time.time() - t0, 1), cpu_s=round(cpu_s() - c0, 1), cpu=cpu_model()),
                      assets/f'prepare-{name}.json')
            log(f'{name}: references, base and scoring in {time.time() - t0:.0f} s')
            if not no_commit: commit([assets], f'controlled v2: references and base ({name})')
        fcntl.flock(lock, fcntl.LOCK_UN)

def run_arms(units:list, i:int, n:int, assets:Path, no_commit:bool, msg:str):
    "Run this worker's share (positions i, i+n, ...) of `units`, [(tag, configs, seed, experiment)], arm by arm."
    def run(c, seed, m, exp):
        t0, c0 = time.time(), cpu_s()
        items, sel = v2_arm(c, seed, m, exp)
        return dict(selection=sel, runs=dict(runs=[record(c, seed, m)], wall_s=round(time.time() - t0, 1),
                                             cpu_s=round(cpu_s() - c0, 1), cpu=cpu_model()), items=items)
    runs = [(tag, f'{tag}-{c.experiment}-{reference_of(c, m)}-{m}-k{c.k}', partial(run, c, seed, m, exp))
            for tag, cfgs, seed, exp in units for c, m in v2_arms(cfgs)]
    run_parts(runs, i, n, assets, Path(units[0][1][0].out), no_commit, msg)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--worker', default='0/1', 
                    help='i/n: this process runs the (unit, arm) runs at positions i, i+n, ...')
    ap.add_argument('--part', choices=['main', 'dose'], default='main')
    ap.add_argument('--pilot', action='store_true')
    ap.add_argument('--assets', default=str(ROOT/'nbs'/'assets'/'controlled_v2'))
    ap.add_argument('--no-commit', action='store_true')
    ap.add_argument('--set', action='append', default=[], metavar='KEY=YAML', help='override a key (all configs)')
    a = ap.parse_args()
    i, n = map(int, a.worker.split('/'))
    threads = set_threads()
    over = {k: yaml.safe_load(v) for k, v in (kv.split('=', 1) for kv in a.set)}
    cfgs = [load_config(p, **over) for p in CONFIGS]
    assets = Path(a.assets)
    if a.pilot:
        g = {**cfgs[0].generator_args, **PILOT_ARGS}
        out = over.get('out', 'runs/controlled_v2_pilot')
        cfgs = [dataclasses.replace(c, generator_args=g, out=out, seeds=[41], methods=m)
                for c, m in zip(cfgs, (['base', 'full', 'fixed'], ['fixed']))]
        assets = assets/'pilot'
    assets.mkdir(parents=True, exist_ok=True)
    log(f'worker {i}/{n}, {threads} thread(s), {cpu_model()}, part {a.part}{" (pilot)" if a.pilot else ""}, {assets}')
    if a.part == 'main':
        shared(cfgs, assets, 'seedless', a.no_commit)
        if a.pilot: cfgs = cfgs[:1]   # the pilot trains no failure arm: its planned selection is enough
        run_arms([(f's{seed}', cfgs, seed, None) for seed in cfgs[0].seeds], i, n, assets, a.no_commit,
                 f'controlled v2 ({assets.name})')
    else:
        dose = load_config(DOSE, **over)
        warm = dose_warmups(dose)
        shared([dataclasses.replace(dose, warmup=w, methods=['fixed']) for w in warm], assets, 'dose-seedless',
               a.no_commit)
        run_arms([(f"dose-{w.lstrip('@')}", dose_configs(dose, w, DOSE_K), dose.seeds[0], 'dose_response')
                  for w in warm], i, n, assets, a.no_commit, 'controlled v2: dose-response')
    log('finished')

if __name__ == '__main__': main()
