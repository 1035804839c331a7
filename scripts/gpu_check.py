"""Every CUDA path of tokenclean, once, in minutes: the first thing to run on a GPU (no internet needed).

    python scripts/gpu_check.py [--out gpu_check] [--gpu H100] [--dry]

Checks, each timed and recorded (a failure is recorded and the next check runs):
  env          torch, CUDA, device, memory, native bf16
  bf16         a tiny random Llama trained under bf16 autocast: finite, falling loss; token_nll == model loss
  fp16         the same under fp16 autocast with the loss scaler (the scale is reported)
  qlora        the packaged model in 4-bit NF4 + LoRA: a few training steps, finite loss
  scoring      per-token losses of the packaged model on the default pool: tokens/s and MFU
  memory       the memory plan's estimate for a training step vs torch.cuda.max_memory_allocated
  lm_eval      lm-eval on the offline tasks (arc_challenge_offline, boolq_offline), a few items each
  study        `tokenclean study` end to end at tiny size (warm-up, scoring, selection, training, held-out)
  time_plan    estimated hours of the paper's study on the named GPU
It writes one JSON report, OUT/gpu_check.json, and prints a line per check.
--dry runs the same code on the CPU at tiny sizes (CUDA-only numbers are null): what CI runs.
"""
import argparse, json, os, platform, subprocess, sys, time, traceback
from pathlib import Path

MODEL = 'smollm2-135m-instruct'

def _rows(tok, n:int, max_len:int):
    from tokenclean.pools import load_pool
    from tokenclean.tokenizing import tokenize_pool
    return tokenize_pool(tok, load_pool('default', limit=n), max_len, verbose=False)

def _tiny(device:str, dtype=None):
    "The tiny random Llama (2 layers, hidden 64) with LoRA, on `device`."
    from tokenclean.models import add_lora, load_model
    return add_lora(load_model('tiny-random', device=device, dtype=dtype), r=4, alpha=8, dropout=0.0)

def _train(model, rows, precision:str, steps:int, micro:int=4, lr:float=1e-3)->dict:
    from tokenclean.training import TrainConfig, train
    cfg = TrainConfig(lr=lr, epochs=1, batch_size=micro, micro_batch=micro, warmup_ratio=0.0, save_every=0,
                      precision=precision, shuffle=False)
    return train(model, rows[:steps * micro], cfg, model.config.pad_token_id or 0, progress=False)

def check_env(a)->dict:
    import torch
    d = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
             cuda_available=torch.cuda.is_available(), dry=a.dry)
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        d.update(device=p.name, memory_gb=round(p.total_memory / 1e9, 1), capability=f'{p.major}.{p.minor}',
                 bf16_native=torch.cuda.is_bf16_supported(including_emulation=False))
    return d

def check_autocast(a, precision:str)->dict:
    "Train the tiny model under `precision` autocast; the loss must be finite and fall; token_nll must match."
    import numpy as np, torch
    from tokenclean.models import load_tokenizer
    from tokenclean.scoring import check_token_nll, collate
    tok = load_tokenizer(MODEL)
    tp = _rows(tok, 8, 128)
    m = _tiny(a.device, None if a.dry else {'bf16': 'bfloat16', 'fp16': 'float16'}[precision])  # the weights a study
                                                                                            # loads on such a GPU
    rows = [tp[i] for i in range(4)] * a.steps                          # one batch again and again: the loss must fall
    batch = {k: v.to(a.device) for k, v in collate(rows[:4], tok.pad_token_id).items()}
    check_token_nll(m, batch, precision)                                # raises if token_nll and the model disagree
    res = _train(m, rows, precision, steps=a.steps, lr=3e-2)
    h = [x for x in res['history'] if x is not None]
    out = dict(steps=res['steps'], first_loss=h[0], last_loss=h[-1], finite=bool(np.isfinite(h).all()),
               falls=bool(np.mean(h[-3:]) < np.mean(h[:3])), skipped_steps=res.get('skipped_steps'),
               loss_scale=res.get('loss_scale'))
    assert out['finite'], f'non-finite loss under {precision}'
    assert out['falls'], f'loss does not fall under {precision}: {h}'
    if precision == 'fp16' and a.device.startswith('cuda'): assert out['loss_scale'], 'fp16 without a loss scaler'
    return out

def check_qlora(a)->dict:
    "The packaged model in 4-bit NF4 with LoRA: a few steps."
    import numpy as np, torch
    from tokenclean.models import add_lora, load_model, load_tokenizer
    tok = load_tokenizer(MODEL)
    tp = _rows(tok, 16, 96 if a.dry else 256)
    if a.device.startswith('cuda'): torch.cuda.reset_peak_memory_stats()
    m = add_lora(load_model(MODEL, device=a.device, quant='4bit'), r=8, alpha=16, dropout=0.0)
    assert getattr(m.base_model.model, 'is_loaded_in_4bit', False), 'the model did not load in 4 bits'
    prec = 'fp32' if a.dry else ('bf16' if torch.cuda.is_bf16_supported() else 'fp16')
    res = _train(m, [tp[i] for i in range(len(tp))], prec, steps=2 if a.dry else 4, micro=2 if a.dry else 4, lr=1e-4)
    h = [x for x in res['history'] if x is not None]
    assert np.isfinite(h).all(), f'non-finite 4-bit loss: {h}'
    return dict(precision=prec, losses=h, peak_gb=_peak(a))

def _peak(a):
    import torch
    return round(torch.cuda.max_memory_allocated() / 1e9, 3) if a.device.startswith('cuda') else None

def _peak_tflops(name:str|None)->tuple:
    "(GPU name in GPU_TFLOPS, dense bf16 peak) for a device name, or (None, None)."
    from tokenclean.config import GPU_TFLOPS
    for k in sorted(GPU_TFLOPS, key=len, reverse=True):
        if name and k.lower() in name.lower(): return k, GPU_TFLOPS[k]
    return None, None

def check_scoring(a)->dict:
    "Per-token losses of the packaged model over part of the default pool: tokens/s and MFU (2·params FLOPs/token)."
    import tempfile, torch
    from tokenclean.models import load_model, load_tokenizer
    from tokenclean.scoring import token_losses
    tok = load_tokenizer(MODEL)
    tp = _rows(tok, 16 if a.dry else 512, 128 if a.dry else 1024)
    m = load_model(MODEL, device=a.device)
    prec = 'fp32' if a.dry else ('bf16' if torch.cuda.is_bf16_supported() else 'fp16')
    n_tok = sum(len(r['input_ids']) for r in tp.rows)
    with tempfile.TemporaryDirectory() as d:
        token_losses(m, tp, d, adapter=False, pad_id=tok.pad_token_id, progress=False, precision=prec,
                     max_tokens=2048 if a.dry else 32768)               # warm-up: kernels, allocator
    if a.device.startswith('cuda'): torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        token_losses(m, tp, d, adapter=False, pad_id=tok.pad_token_id, progress=False, precision=prec,
                     max_tokens=2048 if a.dry else 32768)
        if a.device.startswith('cuda'): torch.cuda.synchronize()
        s = time.perf_counter() - t0
    params = sum(p.numel() for p in m.parameters())
    gpu, peak = _peak_tflops(torch.cuda.get_device_name(0) if a.device.startswith('cuda') else None)
    tps = n_tok / s
    return dict(precision=prec, tokens=n_tok, seconds=round(s, 2), tokens_per_s=round(tps),
                mfu=round(2 * params * tps / (peak * 1e12), 4) if peak else None, peak_tflops=peak, gpu=gpu)

def check_memory(a)->dict:
    "The memory plan's estimate for LoRA training of the packaged model vs the measured peak."
    import torch
    from tokenclean.config import model_shape, train_memory_gb
    from tokenclean.models import add_lora, load_model, load_tokenizer, resolve_model
    L, mb, r = (128, 2, 8) if a.dry else (1024, 8, 64)
    est = train_memory_gb(model_shape(resolve_model(MODEL)), max_len=L, micro_batch=mb, quant=None, r=r)
    tok = load_tokenizer(MODEL)
    tp = _rows(tok, 4 * mb, L)
    rows = [dict(tp[i]) for i in range(len(tp))]
    if a.device.startswith('cuda'): torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    m = add_lora(load_model(MODEL, device=a.device), r=r, alpha=16, dropout=0.0)
    prec = 'fp32' if a.dry else ('bf16' if torch.cuda.is_bf16_supported() else 'fp16')
    _train(m, rows, prec, steps=1 if a.dry else 2, micro=mb, lr=1e-4)
    peak = _peak(a)
    return dict(max_len=L, micro_batch=mb, r=r, est_gb=round(est, 3), peak_gb=peak,
                ratio=round(peak / est, 3) if peak else None,
                max_len_of_rows=max(len(x['input_ids']) for x in rows))

def check_lm_eval(a)->dict:
    "lm-eval in-process on two offline tasks with the packaged model."
    from tokenclean.evaluation import evaluate
    from tokenclean.models import load_model, load_tokenizer
    tok, m = load_tokenizer(MODEL), load_model(MODEL, device=a.device)
    r = evaluate(m, tok, ['arc_challenge_offline', 'boolq_offline'], limit=4 if a.dry else 50, seed=0,
                 meta=dict(method='base'))
    return {t: {k: v for k, v in d.items() if not k.endswith('stderr')} for t, d in r['results'].items()}

def check_study(a)->dict:
    "`tokenclean study` at tiny size, end to end, in a subprocess (the user's command)."
    out = Path(a.out)/'study'
    sets = ['pool_limit=48', 'heldout=8', 'warmup_limit=16', 'max_len=128', 'methods=[full,fixed]', 'seeds=[1]',
            'lora_r=4', 'lora_alpha=8', 'eval_tasks=[]', 'train.batch_size=8', 'train.micro_batch=8',
            'train.epochs=1', f'out={out}', 'progress=false']
    if a.dry: sets += ['model=tiny-random', 'device=cpu']
    cmd = [sys.executable, '-m', 'tokenclean', 'study', '--config', 'cpu'] + [x for s in sets for x in ('--set', s)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.study_timeout)
    res = dict(command=' '.join(cmd[1:]), rc=p.returncode, seconds=round(time.perf_counter() - t0, 1),
               stdout_tail=p.stdout[-1500:], stderr_tail=p.stderr[-1500:])
    assert p.returncode == 0, f'tokenclean study exited {p.returncode}: {p.stderr[-300:]}'
    found = sorted(str(q.relative_to(out)) for q in out.rglob('results.json'))
    assert found, 'no results.json written'
    res['results'] = found
    return res

def _paper_config(name:str):
    "The published shapes of the paper's models (their configs are on the Hub only; Llama's are gated)."
    from transformers import LlamaConfig, MistralConfig
    kw = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
              num_key_value_heads=8)
    if name == 'llama-3.2-3b': return LlamaConfig(**dict(kw, hidden_size=3072, intermediate_size=8192,
                                                         num_hidden_layers=28, num_attention_heads=24),
                                                  vocab_size=128256, tie_word_embeddings=True)
    if name == 'llama-3.1-8b': return LlamaConfig(**kw, vocab_size=128256, tie_word_embeddings=False)
    return MistralConfig(**kw, vocab_size=32768, tie_word_embeddings=False)

def check_time_plan(a)->dict:
    "Estimated hours of the paper's study (one seed, 40% MFU) for the paper's models on `a.gpu`."
    from tokenclean.config import presets, read_config, time_plan
    out = {}
    paper = {n.removeprefix('paper-'): read_config(n)['model'] for n in presets() if n.startswith('paper-')}
    for name, hub in paper.items():
        try: h = time_plan(hub, gpu=a.gpu); src = 'hub config'
        except Exception: h = time_plan(_paper_config(name), gpu=a.gpu); src = 'published shape'
        out[name] = dict(hub=hub, config=src, hours=h, total_hours=round(sum(h.values()), 2))
    return dict(gpu=a.gpu, models=out)

CHECKS = [('env', check_env), ('bf16', lambda a: check_autocast(a, 'bf16')),
          ('fp16', lambda a: check_autocast(a, 'fp16')), ('qlora', check_qlora), ('scoring', check_scoring),
          ('memory', check_memory), ('lm_eval', check_lm_eval), ('study', check_study), ('time_plan', check_time_plan)]

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default='gpu_check'); p.add_argument('--gpu', default=None, help='GPU name for time_plan')
    p.add_argument('--dry', action='store_true', help='CPU at tiny sizes (CI)')
    p.add_argument('--only', nargs='*', help='run only these checks')
    p.add_argument('--steps', type=int, default=None); p.add_argument('--study-timeout', type=int, default=240)
    a = p.parse_args(argv)
    import torch
    from tokenclean.core import set_threads
    if not a.dry and not torch.cuda.is_available():
        sys.exit('gpu_check: no CUDA device; run with --dry for the CPU dry mode')
    a.device = 'cpu' if a.dry else 'cuda'
    a.steps = a.steps or (6 if a.dry else 12)
    if a.dry: set_threads()
    if a.gpu is None: a.gpu = _peak_tflops(torch.cuda.get_device_name(0))[0] if not a.dry else 'H100'
    a.gpu = a.gpu or 'A100'
    Path(a.out).mkdir(parents=True, exist_ok=True)
    report, t_all = dict(started=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), checks={}), time.perf_counter()
    for name, fn in CHECKS:
        if a.only and name not in a.only: continue
        t0 = time.perf_counter()
        try: r = dict(ok=True, **fn(a))
        except Exception as e:
            r = dict(ok=False, error=f'{type(e).__name__}: {" ".join(str(e).split())[:400]}',
                     traceback=traceback.format_exc()[-2000:])
        r['seconds'] = round(time.perf_counter() - t0, 1)
        report['checks'][name] = r
        print(f"{name:<10} {'ok  ' if r['ok'] else 'FAIL'} {r['seconds']:>7.1f} s  "
              f"{r.get('error') or json.dumps({k: v for k, v in r.items() if k not in ('ok', 'seconds', 'traceback', 'stdout_tail', 'stderr_tail')}, default=str)[:160]}",
              flush=True)
        with open(Path(a.out)/'gpu_check.json', 'w') as f: json.dump(report, f, indent=2, default=str)
    report.update(seconds=round(time.perf_counter() - t_all, 1), ok=all(r['ok'] for r in report['checks'].values()))
    with open(Path(a.out)/'gpu_check.json', 'w') as f: json.dump(report, f, indent=2, default=str)
    hp = report['checks'].get('time_plan', {}).get('models', {})
    for name, d in hp.items(): print(f"time plan on {a.gpu}: {name}: {d['total_hours']:.1f} h per seed, {d['hours']}")
    print(f"gpu_check: {'all ok' if report['ok'] else 'FAILURES'} in {report['seconds']:.0f} s; report {Path(a.out)/'gpu_check.json'}")
    return 0 if report['ok'] else 1

if __name__ == '__main__': sys.exit(main())
