#!/usr/bin/env python
"""bf16 against fp32 on this CPU, in one run: training speed and final loss, where training's time goes (per op),
the scoring agreement check on the default pool, and where scoring's disagreement comes from.
With `--train-only` it stops after 2. With `--studies A.yaml,B.yaml` it runs only the agreement check on each study's
pool with that study's own reference; with `--decompose A.yaml` the check and the decomposition of part 3 on that
study's pool with its reference (read from `--study-out`, or trained there).

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python scripts/cpu_precision.py [--json OUT.json]

1. Training: a LoRA reference (r 16, α 32, the top 10 layers, as the CPU study) trained on the same warm-up chats from
   the same initial adapter in fp32 and under bf16 autocast (the weights stay fp32: autocast casts copies for each
   matmul, so the optimizer updates fp32 master weights): tokens/s of each and the final losses.
2. Profile: one more training step (8 median-length chats) under `torch.profiler` in fp32, in bf16 with `frozen_bf16`
   (as `train` runs it) and in bf16 under plain autocast: the ops with the most self CPU time, and the seconds.
3. Scoring: `check_precision` (the study's agreement check) on the default pool with the fp32 reference (and on the
   real-pool study's pool: its first 200 chats at max_len 192, same reference); then, on
   a smaller seeded share (`--decomp-tokens` scored tokens), the per-token losses with the transformer body and the
   output head each in fp32 or bf16 (all through `scoring.token_nll`), each against fp32 end to end: largest and mean |difference| of a token's loss and
   the Jaccard of the top-k kept sets (score = base − reference).
"""
import argparse, contextlib, json, os, platform, time
import numpy as np, torch
from tokenclean.core import set_threads
from tokenclean.pools import load_pool
from tokenclean.tokenizing import tokenize_pool
from tokenclean.models import load_model, load_tokenizer, add_lora, adapter_off, autocast, top_layers
from tokenclean.scoring import collate, token_nll, length_batches, scored_part, check_precision, agreement_share
from tokenclean.selection import top_k_mask
from tokenclean.training import TrainConfig, train, train_step, frozen_bf16

MODEL = 'smollm2-135m-instruct'
MODES = dict(fp32=('fp32', torch.float32), bf16_body=('bf16', torch.float32), bf16_head=('fp32', torch.bfloat16),
             bf16_all=('bf16', None))   # (autocast of the body, dtype of the head; None = the autocast's)

def cpu_name()->str:
    for line in open('/proc/cpuinfo'):
        if line.startswith('model name'): return line.split(':', 1)[1].strip()
    return platform.processor()

def losses(model, rows, pad_id, body:str, head, adapter:bool)->tuple:
    "Per-token losses of `rows` (in row order) with the body under `body` autocast and the head in `head`; tokens/s."
    cut = [scored_part(r) for r in rows]
    live = [i for i, c in enumerate(cut) if c is not None]
    out, n, t0 = {}, 0, time.perf_counter()
    with torch.no_grad(), autocast('cpu', body), (adapter_off(model) if not adapter else contextlib.nullcontext()):
        for b in length_batches([len(cut[i]['input_ids']) for i in live], 8192):
            b = [live[j] for j in b]
            batch = collate([cut[i] for i in b], pad_id)
            counts = [int((cut[i]['labels'][1:] != -100).sum()) for i in b]
            for i, part in zip(b, torch.split(token_nll(model, **batch, head_dtype=head).float(), counts)):
                out[i] = part.numpy()
            n += int(batch['attention_mask'].sum())
    return np.concatenate([out[i] for i in live]), n / (time.perf_counter() - t0)

def jaccard(a, b): return float((a & b).sum() / max((a | b).sum(), 1))

def profile_step(model, rows, pad_id, prec:str, once:bool=False, top:int=12)->dict:
    "One training step of `rows` under torch.profiler: seconds per phase and the ops with the most self CPU time."
    from torch.profiler import profile, ProfilerActivity, record_function
    cfg = TrainConfig(micro_batch=len(rows), batch_size=len(rows), precision=prec)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)
    stats = dict(skipped_steps=0, skipped_micro_batches=0, trained_tokens=0)
    train_step(model, rows, list(range(len(rows))), cfg, pad_id, stats); model.zero_grad(set_to_none=True)   # warm
    with frozen_bf16(model, once), profile(activities=[ProfilerActivity.CPU]) as prof:
        with record_function('step'):
            t0 = time.process_time()
            train_step(model, rows, list(range(len(rows))), cfg, pad_id, stats)   # forward + backward
            t1 = time.process_time(); opt.step(); opt.zero_grad(set_to_none=True); t2 = time.process_time()
    ev = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    tot = sum(e.self_cpu_time_total for e in ev)
    ops = [dict(op=e.key, self_s=e.self_cpu_time_total / 1e6, share=e.self_cpu_time_total / tot, calls=e.count)
           for e in ev[:top]]
    return dict(fwd_bwd_s=t1 - t0, opt_s=t2 - t1, tokens=int(sum(len(r['input_ids']) for r in rows)), ops=ops)

def study_check(path:str, out:str)->dict:
    "`check_precision` on the pool of the study `path` (a YAML config) with that study's own warm-up reference."
    from tokenclean.config import load_config
    from tokenclean.study import Study, with_adapter
    from tokenclean.stages import warmup_reference
    st, t0, l0 = Study(load_config(path, out=out, progress=False)), time.perf_counter(), os.getloadavg()
    ref = with_adapter(st, warmup_reference(st)).eval()
    t1 = time.perf_counter()
    chk = check_precision(ref, st.pool, k=st.cfg.k, pad_id=st.tok.pad_token_id, max_tokens=st.cfg.score_max_tokens)
    c = st.cfg
    return dict(chk, config=path, pool=f"{c.pool} ({len(st.pool)} chats at max_len {c.max_len})",
                reference=f"the study's warm-up reference ({len(st.warmup)} chats, {c.warmup_epochs or c.train.get('epochs', 1)} "
                          f"epoch(s), LoRA r {c.lora_r} on {c.lora_layers} layers)",
                reference_precision=st.plan['precision'], reference_s=t1 - t0, check_s=time.perf_counter() - t1, load_start=l0, load_end=os.getloadavg())

def studies_only(a):
    "Only the agreement check on the pools of the `--studies` configs, each with its own reference."
    import tempfile
    set_threads(a.threads)
    res = dict(machine=dict(cpu=cpu_name(), cores=os.cpu_count(), threads=torch.get_num_threads(),
                            avx512_bf16=torch.cpu._is_avx512_bf16_supported(), amx=torch.cpu._is_amx_tile_supported(),
                            torch=torch.__version__, load_avg_start=os.getloadavg()), config=vars(a), checks={})
    for path in a.studies.split(','):
        with tempfile.TemporaryDirectory() as out: res['checks'][path] = study_check(path, out)
        print(f"{path}: {res['checks'][path]['reason']}", flush=True)
    res['machine']['load_avg_end'] = os.getloadavg()
    if a.json: open(a.json, 'w').write(json.dumps(res, indent=1, default=str) + '\n')

def decompose(ref, pool, pad_id:int, tokens:int, k:float=0.6)->tuple:
    "Losses and scores of a seeded share of `pool` with the body and the head each in fp32 or bf16, against fp32."
    rows = [pool[i] for i in agreement_share(pool, share=0.0, min_tokens=tokens)]   # a smaller share
    modes = {}
    for name, (body, head) in MODES.items():
        b, tb = losses(ref, rows, pad_id, body, head, adapter=False)
        r, tr = losses(ref, rows, pad_id, body, head, adapter=True)
        modes[name] = dict(base=b, score=b - r, tokens_per_s=2 / (1 / tb + 1 / tr))
        print(f"score {name}: {modes[name]['tokens_per_s']:.0f} tokens/s", flush=True)
    keep32 = top_k_mask(modes['fp32']['score'], k)
    scoring = {n: dict(body=MODES[n][0], head=str(MODES[n][1] or 'autocast').replace('torch.', ''),
                       tokens_per_s=m['tokens_per_s'],
                       base_loss_max_abs_diff=float(np.abs(m['base'] - modes['fp32']['base']).max()),
                       base_loss_mean_abs_diff=float(np.abs(m['base'] - modes['fp32']['base']).mean()),
                       score_mean_abs_diff=float(np.abs(m['score'] - modes['fp32']['score']).mean()),
                       jaccard=jaccard(top_k_mask(m['score'], k), keep32)) for n, m in modes.items()}
    share = dict(samples=len(rows), tokens=int(sum(len(r['input_ids']) for r in rows)),
                 scored=int(len(modes['fp32']['base'])), score_sd=float(modes['fp32']['score'].std()))
    return scoring, share

def study_decompose(a):
    "The agreement check and the decomposition on the pool of the study `--decompose` with its own reference."
    from tokenclean.config import load_config
    from tokenclean.study import Study, with_adapter
    from tokenclean.stages import warmup_reference
    set_threads(a.threads)
    st = Study(load_config(a.decompose, out=a.study_out, progress=False))
    ref = with_adapter(st, warmup_reference(st)).eval()
    res = dict(machine=dict(cpu=cpu_name(), threads=torch.get_num_threads(), load_avg_start=os.getloadavg()),
               config=vars(a), pool=f"{st.cfg.pool} ({len(st.pool)} chats at max_len {st.cfg.max_len})",
               check=check_precision(ref, st.pool, k=st.cfg.k, pad_id=st.tok.pad_token_id))
    res['scoring'], res['share'] = decompose(ref, st.pool, st.tok.pad_token_id, a.decomp_tokens, st.cfg.k)
    res['machine']['load_avg_end'] = os.getloadavg()
    print(json.dumps({k: res[k] for k in ('check', 'scoring', 'share')}, indent=1, default=str))
    if a.json: open(a.json, 'w').write(json.dumps(res, indent=1, default=str) + '\n')

def main(a):
    if a.studies: return studies_only(a)
    if a.decompose: return study_decompose(a)
    set_threads(a.threads)
    t_start, load0 = time.perf_counter(), os.getloadavg()
    tok = load_tokenizer(MODEL)
    warm = tokenize_pool(tok, load_pool('default:warmup', limit=a.warmup), a.train_len, verbose=False).rows
    res = dict(machine=dict(cpu=cpu_name(), cores=os.cpu_count(), threads=torch.get_num_threads(),
                            avx512_bf16=torch.cpu._is_avx512_bf16_supported(), amx=torch.cpu._is_amx_tile_supported(),
                            torch=torch.__version__, load_avg_start=load0),
               config=vars(a))
    # 1. training, fp32 and bf16, then 2. one profiled step each
    refs, train_res = {}, {}
    for rep in range(a.train_reps):                                    # interleaved: fp32, bf16, fp32, bf16, ...
        for prec in ('fp32', 'bf16'):
            torch.manual_seed(0)
            base = load_model(MODEL, device='cpu')
            m = add_lora(base, r=16, alpha=32, dropout=0.0, targets=top_layers(base.config, 10))
            cfg = TrainConfig(lr=1e-3, batch_size=8, micro_batch=8, epochs=1, warmup_ratio=0.0, seed=0, precision=prec,
                              save_every=0, shuffle=False)
            ntok, t0, c0, l0 = sum(len(r['input_ids']) for r in warm), time.perf_counter(), time.process_time(), os.getloadavg()
            h = train(m, warm, cfg, tok.pad_token_id, progress=False)
            run = dict(tokens_per_s=ntok / (time.process_time() - c0), wall_tokens_per_s=ntok / (time.perf_counter() - t0),
                       final_loss=h['history'][-1], load_start=l0, load_end=os.getloadavg())
            prev = train_res.get(prec)
            runs = (prev['runs'] if prev else []) + [run]
            best = max(runs, key=lambda x: x['wall_tokens_per_s'])
            train_res[prec] = dict(tokens_per_s=best['tokens_per_s'], wall_tokens_per_s=best['wall_tokens_per_s'],
                                   final_loss=h['history'][-1], history=h['history'], tokens=ntok, runs=runs)
            refs[prec] = m
            print(f"train {prec} (round {rep}): {run['tokens_per_s']:.1f} tokens/CPU-s, {run['wall_tokens_per_s']:.1f} "
                  f"tokens/s, final loss {h['history'][-1]:.4f}", flush=True)
    mb = sorted(warm, key=lambda r: len(r['input_ids']))[len(warm) // 2:][:8]
    for prec, once in (('fp32', False), ('bf16', True), ('bf16_autocast', False)):
        p = train_res.setdefault(prec, {})['profile'] = profile_step(refs[prec[:4]], mb, tok.pad_token_id, prec[:4], once)
        print(f"profile {prec}: fwd+bwd {p['fwd_bwd_s']:.2f} s, optimizer {p['opt_s']:.3f} s; top ops: " +
              ', '.join(f"{o['op']} {o['share']:.0%}" for o in p['ops'][:6]), flush=True)
    res['train'] = train_res
    res['train_speedup'] = train_res['bf16']['tokens_per_s'] / train_res['fp32']['tokens_per_s']
    res['train_speedup_wall'] = train_res['bf16']['wall_tokens_per_s'] / train_res['fp32']['wall_tokens_per_s']
    f32, f16 = train_res['fp32']['final_loss'], train_res['bf16']['final_loss']
    res['final_loss_rel_diff'] = (f16 - f32) / f32
    if a.train_only:
        res['machine']['load_avg_end'] = os.getloadavg(); res['total_s'] = time.perf_counter() - t_start
        for p in ('fp32', 'bf16'): res['train'][p].pop('history')
        print(f"training bf16/fp32: {res['train_speedup']:.2f}x tokens/CPU-s, {res['train_speedup_wall']:.2f}x tokens/s, "
              f"final loss {res['final_loss_rel_diff']:+.2%}")
        if a.json: open(a.json, 'w').write(json.dumps(res, indent=1, default=str) + '\n')
        return
    # 3. scoring: the agreement check on the default pool, then the decomposition on its share
    ref = refs['fp32'].eval()
    pool = tokenize_pool(tok, load_pool('default'), a.max_len, verbose=False)
    t0 = time.perf_counter()
    res['check'] = check_precision(ref, pool, k=0.6, pad_id=tok.pad_token_id)
    res['check'].update(seconds=time.perf_counter() - t0, pool=f'default, all {len(pool)} chats at max_len {a.max_len}',
                        reference='this run\'s fp32 reference (the warm-up chats above)')
    res['scoring'], res['share'] = decompose(ref, pool, tok.pad_token_id, a.decomp_tokens)
    res['machine']['load_avg_end'] = os.getloadavg()
    res['total_s'] = time.perf_counter() - t_start
    print(json.dumps({k: v for k, v in res.items() if k not in ('train',)}, indent=1, default=str))
    print(f"training bf16/fp32: {res['train_speedup']:.2f}x tokens/s, final loss {res['final_loss_rel_diff']:+.2%}")
    if a.json:
        for p in ('fp32', 'bf16'): res['train'][p].pop('history')
        open(a.json, 'w').write(json.dumps(res, indent=1, default=str) + '\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--json'); p.add_argument('--threads', type=int, default=None)
    p.add_argument('--warmup', type=int, default=24, help='warm-up chats the reference trains on')
    p.add_argument('--train-len', type=int, default=192)
    p.add_argument('--decomp-tokens', type=int, default=1500, help='scored tokens of the share the parts are measured on')
    p.add_argument('--max-len', type=int, default=2048)
    p.add_argument('--train-only', action='store_true', help='parts 1 and 2 only (training and its profile)')
    p.add_argument('--train-reps', type=int, default=2, help='rounds of fp32 and bf16 training, interleaved')
    p.add_argument('--studies', help='only the agreement check on these study configs\' pools (comma-separated YAML)')
    p.add_argument('--decompose', help="only the check and the decomposition on this study config's pool and reference")
    p.add_argument('--study-out', default='runs', help="`--decompose`: the study's run folder (its cached reference)")
    main(p.parse_args())
