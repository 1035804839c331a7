"""tokenclean's `train()` under an FSDP2 accelerate config on 2 CPU processes (gloo), launched by tests/test_fsdp.py:

    accelerate launch --config_file tests/fixtures/accelerate-fsdp2-cpu.yaml tests/fsdp_job.py OUT [fp32|fp16|online]
                      [KILL]
    accelerate launch --config_file tests/fixtures/accelerate-fsdp2-cpu.yaml tests/fsdp_job.py study OUT CONFIG

Rows and settings are those of `mp_score.py train` (all-masked micro-batches on some ranks). With KILL the job dies
after that many steps (a checkpoint is left in OUT_DIR); the same command again resumes it. `online` trains with the
`online` rule and a running threshold (`ONLINE`) on `online_rows`. `study` runs the whole
study of CONFIG (`mp_score.py study`) and records, per rank, whether each of its trainings was sharded.
"""
import os, sys, warnings
import numpy as np
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
from tokenclean.core import set_threads, save_json
from tokenclean.models import accelerator, processes, load_tokenizer
from mp_score import TRAIN, lora_model, masked_rows, study

def cpu_fsdp():
    "Switch accelerate's state to FSDP: accelerate 1.15 runs CPU processes as MULTI_CPU and ignores the FSDP config."
    a = accelerator()
    assert a.distributed_type == DistributedType.MULTI_CPU and os.environ.get('ACCELERATE_USE_FSDP') == 'true', (
        'launch with the FSDP config on CPU processes')
    from accelerate.state import PartialState
    a.state.fsdp_plugin = FullyShardedDataParallelPlugin()      # from the FSDP_* variables the config file set
    a.state.distributed_type = PartialState._shared_state['distributed_type'] = DistributedType.FSDP
    assert a.is_fsdp2

ONLINE = dict(rule='online', rule_k=0.5, online_window=256)

def online_rows(tok)->list:
    "`masked_rows` with seeded random stored base losses (what the `online` rule reads)."
    rng = np.random.default_rng(0)
    return [dict(r, base_loss=rng.normal(3, 1, len(r['labels'])).astype(np.float32)) for r in masked_rows(tok)]

def main(out:str, precision:str='fp32', kill:int=0):
    import tokenclean.training as T
    tok = load_tokenizer('tiny-random')
    model = lora_model()
    if kill:
        step, n = T.train_step, [0]
        def dying(*a, **kw):
            n[0] += 1
            if n[0] > kill: os._exit(3)                  # every process dies after the same step, as on a lost node
            return step(*a, **kw)
        T.train_step = dying
    saves, save = [], model.save_pretrained
    def counted(path, **kw):
        saves.append(str(path))
        return save(path, **kw)
    model.save_pretrained = counted                      # which process writes the adapter
    rule = ONLINE if precision == 'online' else dict(precision=precision)
    cfg = T.TrainConfig(**{**TRAIN, **rule, 'save_every': 2})
    rows = online_rows(tok) if precision == 'online' else masked_rows(tok)
    with warnings.catch_warnings():
        warnings.filterwarnings('error', 'the accelerate config asks for FSDP')   # it must not be ignored
        h = T.train(model, rows, cfg, tok.pad_token_id, out=out, progress=False)
    rank, world = processes()
    local = {n: (type(p).__name__, tuple(p.to_local().shape) if hasattr(p, 'to_local') else tuple(p.shape))
             for n, p in model.named_parameters() if p.requires_grad}
    save_json(dict(history=h['history'], saves=saves, loss_scale=h.get('loss_scale'), local=local, world=world,
                   token_weight=h.get('token_weight'),
                   skipped=h['skipped_micro_batches'], distributed_type=str(accelerator().distributed_type)),
              os.path.join(out, f'rank{rank}.json'))

def sharded_study(out:str, config:str):
    "The whole study under FSDP; each rank writes which of its trainings FSDP sharded (`is_sharded` after `train`)."
    import tokenclean.stages as S, tokenclean.self_evolving as E
    from tokenclean.training import is_sharded
    sharded = []
    def recording(train):
        def f(model, *a, **kw):
            res = train(model, *a, **kw)
            sharded.append((kw.get('desc'), is_sharded(model), len(accelerator()._models)))
            return res
        return f
    S.train, E.train = recording(S.train), recording(E.train)
    study(out, config)
    save_json(dict(sharded=sharded), os.path.join(out, f'rank{processes()[0]}.json'))

if __name__ == '__main__':
    set_threads(1)
    cpu_fsdp()
    if sys.argv[1] == 'study': sharded_study(*sys.argv[2:4])
    else: main(sys.argv[1], *(sys.argv[2:3] or ['fp32']), *map(int, sys.argv[3:4]))
