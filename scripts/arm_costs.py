"""The cost of each arm (issue 22): training time per optimizer step and peak memory of every method, relative to
full tokens, with the one-off stages some methods need (the reference's warm-up, the scoring passes) timed too.

  OMP_NUM_THREADS=2 .venv/bin/python scripts/arm_costs.py --threads 2 --json nbs/assets/performance/arm_costs.json
  .venv/bin/python scripts/arm_costs.py --model tiny-random --steps 2 --no-oneoff     # plumbing check, seconds

Every measurement runs in a fresh process, one at a time (run it on an idle machine): the process loads the study's
data and model, then times only the measured call while a thread samples its resident memory every 10 ms. The arms
train the study's own rows (`--config`, default the real-text study's reference A preset) for `--steps` optimizer steps
of its batch size. A masked arm's step cost depends on how many tokens it keeps, not which (the body runs on every
token, the head and the loss only on the kept ones), so `random` (60%) stands for fixed, rho and base_loss; token
cleaning pays the warm-up and a scoring pass with two models once per study, `online`, `sstoken` and `base_loss` a
scoring pass with the base alone.
"""
import argparse, dataclasses, json, os, subprocess, sys, tempfile, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ['full', 'random', 'dft', 'entropy', 'prob_threshold', 'online', 'sstoken']
ONEOFF = ['warmup', 'score', 'score_base']
NEEDS = dict(fixed=['warmup', 'score'], rho=['warmup', 'score'], base_loss=['score_base'], online=['score_base'],
             sstoken=['score_base'])

def rss_mb()->float:
    "This process's resident memory (MB), from /proc."
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024
    return float('nan')

class Peak:
    "Sample resident memory every 10 ms inside the block: `before`, `peak` (MB) and `s` (wall seconds)."
    def __enter__(self):
        self.before, self.peak, self._on = rss_mb(), rss_mb(), True
        def watch():
            while self._on: self.peak = max(self.peak, rss_mb()); time.sleep(0.01)
        self._t = threading.Thread(target=watch, daemon=True); self._t.start(); self.t0 = time.perf_counter()
        return self
    def __exit__(self, *a):
        self.s = time.perf_counter() - self.t0
        self._on = False; self._t.join(); self.peak = max(self.peak, rss_mb())

def measure(what:str, a)->dict:
    "One measurement in this process: an arm's training (`train:<arm>`) or a one-off stage."
    from tokenclean.core import set_threads
    from tokenclean.config import load_config
    from tokenclean.study import Study, new_adapter, train_config, base_model
    from tokenclean.stages import warmup_reference, score_pool
    from tokenclean.scoring import token_losses, zero_losses, join_scores
    from tokenclean.selection import select, apply_selection
    from tokenclean.token_weights import with_base_losses
    from tokenclean.training import train
    from tokenclean.config import METHOD_RULE, TOKEN_RULE_METHODS
    set_threads(a.threads)
    over = dict(out=a.out, progress=False, eval_tasks=[], **({'model': a.model, 'lora_layers': None}
                                                               if a.model == 'tiny-random' else {}))
    st = Study(load_config(a.config, **over))
    if what == 'warmup':
        with Peak() as p: warmup_reference(st)
        return dict(s=p.s, peak_mb=p.peak, before_mb=p.before, steps=len(st.warmup) // st.cfg.train['batch_size'])
    if what == 'score':
        warmup_reference(st)
        with Peak() as p: score_pool(st)
        n = int(sum(len(r['input_ids']) for r in st.pool.rows))
        return dict(s=p.s, peak_mb=p.peak, before_mb=p.before, tokens=n)
    if what == 'score_base':
        m = base_model(st)
        with Peak() as p: token_losses(m, st.pool, Path(a.out)/'base-only', adapter=True, pad_id=st.tok.pad_token_id,
                                      progress=False)
        return dict(s=p.s, peak_mb=p.peak, before_mb=p.before)
    arm = what.split(':', 1)[1]
    zero = zero_losses(st.pool)
    sc = join_scores(st.pool, zero, zero)                      # the mask's cost does not depend on its scores
    sel = select(sc, METHOD_RULE[arm], st.cfg.k, 0)
    rows = apply_selection(sel, [st.pool[i] for i in range(len(st.pool))])
    tc = train_config(st, 0)
    if arm in TOKEN_RULE_METHODS:
        tc = dataclasses.replace(tc, rule=arm, rule_k=st.cfg.k)
        rows = with_base_losses(rows, sc) if arm in ('online', 'sstoken') else rows
    rows = rows[:a.steps * tc.batch_size]
    tc = dataclasses.replace(tc, save_every=0, warmup_ratio=0.0, epochs=1)
    m = new_adapter(st, 0)
    with Peak() as p: h = train(m, rows, tc, st.tok.pad_token_id, progress=False)
    return dict(s=p.s, s_per_step=p.s / h['steps'], peak_mb=p.peak, before_mb=p.before, steps=h['steps'],
                trained_tokens=h['trained_tokens'], input_tokens=int(sum(len(r['input_ids']) for r in rows)))

def table(res:dict, steps:int)->list:
    "Rows per arm: s/step and peak relative to full, one-off stages, and a study run of `steps` steps in all."
    full = res['train:full']
    rows = []
    for arm in ARMS + ['fixed', 'rho', 'base_loss']:
        t = res['train:' + ('random' if arm in ('fixed', 'rho', 'base_loss') else arm)]
        once = sum(res[o]['s'] for o in NEEDS.get(arm, []) if o in res)
        rows.append(dict(arm=arm, s_per_step=round(t['s_per_step'], 3), step_vs_full=round(t['s_per_step'] /
                         full['s_per_step'], 3), peak_mb=round(t['peak_mb']), peak_vs_full=round(t['peak_mb'] /
                         full['peak_mb'], 3), oneoff=', '.join(NEEDS.get(arm, [])) or '-', oneoff_s=round(once, 1),
                         run_vs_full=round((once + steps * t['s_per_step']) / (steps * full['s_per_step']), 3)))
    return rows

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--config', default=str(ROOT/'configs'/'studies'/'real_text_a.yaml'))
    ap.add_argument('--model', default=None, help='tiny-random: the plumbing check')
    ap.add_argument('--steps', type=int, default=20, help='optimizer steps timed per arm')
    ap.add_argument('--run-steps', type=int, default=125, help="a study run's steps (the one-off stages amortised)")
    ap.add_argument('--threads', type=int, default=int(os.environ.get('OMP_NUM_THREADS', 1)))
    ap.add_argument('--no-oneoff', action='store_true', help='time the arms only')
    ap.add_argument('--json')
    ap.add_argument('--one', help=argparse.SUPPRESS)
    ap.add_argument('--out', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one: return print('RESULT ' + json.dumps(measure(a.one, a)))
    res, env = {}, dict(os.environ, OMP_NUM_THREADS=str(a.threads), TOKENIZERS_PARALLELISM='false')
    with tempfile.TemporaryDirectory() as out:
        for what in [f'train:{x}' for x in ARMS] + ([] if a.no_oneoff else ONEOFF):
            cmd = [sys.executable, __file__, '--one', what, '--out', out, '--config', a.config, '--steps', str(a.steps),
                   '--threads', str(a.threads)] + (['--model', a.model] if a.model else [])
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
            if p.returncode or not line: sys.exit(f'{what} failed:\n{p.stderr[-3000:]}')
            res[what] = json.loads(line[-1][7:])
            print(what, {k: round(v, 3) if isinstance(v, float) else v for k, v in res[what].items()}, flush=True)
    from tokenclean.studies.real_pool import cpu_model
    rows = table(res, a.run_steps)
    for r in rows: print(r)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(dict(cpu=cpu_model(), threads=a.threads, steps=a.steps, config=a.config,
                                                model=a.model, measured=res, table=rows), indent=1) + '\n')

if __name__ == '__main__': main()
