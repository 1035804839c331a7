"""Training with the frozen layers replayed (`train_reuse_layers`): seconds per step, and the same bits.

  OMP_NUM_THREADS=1 .venv/bin/python scripts/train_replay.py --json nbs/assets/real_text/train_replay.json
  .venv/bin/python scripts/train_replay.py --model tiny-random --steps 2          # plumbing check, seconds

Trains the real-text study's `full` arm (reference A's preset: LoRA on the top 10 of 30 layers, batch 4, fp32) on the
first `--steps` batches of the study's pool, three times in one process: without replay, storing the outputs of the
frozen layers below the LoRA ones, and replaying them (what every arm after the first at a seed does). Prints the
seconds per step of each, and whether the three loss histories and adapters are identical.
"""
import argparse, json, tempfile, time
from pathlib import Path
from tokenclean.core import set_threads, save_json
from tokenclean.config import load_config
from tokenclean.models import fingerprint
from tokenclean.study import Study, new_adapter, train_config
from tokenclean.training import train
from tokenclean.studies.real_pool import cpu_model

ROOT = Path(__file__).resolve().parents[1]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--config', default=str(ROOT/'configs'/'studies'/'real_text_a.yaml'))
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--seed', type=int, default=41)
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--model', default=None, help='another model (tiny-random: LoRA on its top layer)')
    ap.add_argument('--json', default=None)
    a = ap.parse_args()
    threads = set_threads(a.threads)
    over = dict(progress=False, eval_tasks=[], **({'model': a.model, 'lora_layers': 1} if a.model else {}))
    st = Study(load_config(a.config, **over))
    tc = train_config(st, a.seed)
    rows = st.pool.rows[:a.steps * tc.batch_size]
    out, folder = {}, Path(tempfile.mkdtemp())/'states'
    for name in ('plain', 'store', 'replay'):
        m = new_adapter(st, a.seed)
        n = m.config.num_hidden_layers - st.cfg.lora_layers
        t0 = time.perf_counter()
        h = train(m, rows, tc, st.tok.pad_token_id, progress=False, reuse=None if name == 'plain' else (n, folder))
        s = time.perf_counter() - t0
        out[name] = dict(s=round(s, 2), s_per_step=round(s / h['steps'], 3), steps=h['steps'],
                         history=h['history'], fingerprint=fingerprint(m))
        print(f"{name}: {s:.1f} s, {s / h['steps']:.2f} s/step")
    same = all(out[k]['history'] == out['plain']['history'] and out[k]['fingerprint'] == out['plain']['fingerprint']
               for k in out)
    res = dict(config=Path(a.config).name, model=st.cfg.model, frozen_layers=n, lora_layers=st.cfg.lora_layers,
               steps=a.steps, batch_size=tc.batch_size, threads=threads, cpu=cpu_model(), identical=same,
               speedup_replay=round(out['plain']['s'] / out['replay']['s'], 3),
               cost_store=round(out['store']['s'] / out['plain']['s'], 3), runs=out)
    print(json.dumps({k: v for k, v in res.items() if k != 'runs'}))
    if a.json: save_json(res, a.json)

if __name__ == '__main__': main()
