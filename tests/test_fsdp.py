"""tokenclean's `train()` under an FSDP2 accelerate config on 2 CPU processes (gloo) against 1 process.

`tests/fixtures/accelerate-fsdp2-cpu.yaml` is an ordinary FSDP2 config (one shard unit per decoder layer) with
`use_cpu`. accelerate 1.15 never shards CPU processes (`Accelerator(cpu=True)` is `MULTI_CPU` whatever the config says,
and `train` then warns and trains data parallel), so `tests/fsdp_job.py` switches accelerate's state to FSDP with the
plugin the config describes; from there accelerate's own FSDP2 preparation, torch's `fully_shard` on gloo and
tokenclean's gathering run as on GPUs. The rows are `mp_score.py train`'s: some ranks get all-masked micro-batches.
`online` with a running threshold is trained the same way (the keep set must agree across ranks). The last test
runs the whole tiny study of `test_accelerate.py` under the same config, against 1 process.
"""
import json, os, subprocess, sys
from pathlib import Path
import pytest, torch
from mp_score import TRAIN, lora_model, masked_rows
from test_accelerate import (TINY, one_process_beside, assert_every_file_written_once, assert_same_scores,
                             assert_same_selection_close_adapters)

HERE = Path(__file__).parent
CONFIG = HERE/'fixtures'/'accelerate-fsdp2-cpu.yaml'
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1',
           TOKENIZERS_PARALLELISM='false')
TOL = dict(atol=1e-5, rtol=1e-4)   # the shards' gradients are reduced in another order than one process sums them

def launch(*args, ok=True):
    "`accelerate launch` fsdp_job.py with `args` under the FSDP2 config."
    acc = Path(sys.executable).with_name('accelerate')
    cmd = [str(acc), 'launch', '--config_file', str(CONFIG), '--main_process_port', '29541',
           str(HERE/'fsdp_job.py'), *map(str, args)]
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900)
    if ok: assert p.returncode == 0, f'accelerate launch failed:\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}'
    return p

def one_process(precision:str):
    "The same training in this process: (trained model, result)."
    from tokenclean.models import load_tokenizer
    from tokenclean.training import TrainConfig, train
    tok = load_tokenizer('tiny-random')
    m = lora_model()
    return m, train(m, masked_rows(tok), TrainConfig(**{**TRAIN, 'precision': precision}), tok.pad_token_id,
                    progress=False)

def lora(m)->dict: return {n: p.detach() for n, p in m.named_parameters() if 'lora_' in n}

def loaded(adapter:Path):
    "The saved adapter loaded back on the base model with peft."
    from peft import PeftModel
    from tokenclean.models import load_model
    return PeftModel.from_pretrained(load_model('tiny-random', device='cpu', seed=0), str(adapter))

def ranks(out:Path)->list: return [json.loads((out/f'rank{r}.json').read_text()) for r in range(2)]

def assert_same_adapter(out:Path, m1):
    a, b = lora(loaded(out/'adapter')), lora(m1)
    assert a.keys() == b.keys() and len(a) == 28                       # 2 layers x 7 projections x (A, B)
    for n in a: torch.testing.assert_close(a[n], b[n], **TOL)
    return max((a[n] - b[n]).abs().max().item() for n in a)

def test_fsdp_shards_trains_and_saves_the_one_process_adapter(tmp_path):
    launch(tmp_path, 'fp32')
    m1, h1 = one_process('fp32')
    r = ranks(tmp_path)
    assert all(x['distributed_type'] == 'DistributedType.FSDP' and x['world'] == 2 for x in r)
    full = {n: tuple(p.shape) for n, p in m1.named_parameters() if p.requires_grad}
    for n, (kind, shape) in r[0]['local'].items():                 # each process holds half of every LoRA weight
        assert kind == 'DTensor' and shape[0] * 2 == full[n][0] and tuple(shape[1:]) == full[n][1:], n
    assert r[0]['saves'] == [str(tmp_path/'adapter')] and r[1]['saves'] == []   # the main process alone writes
    assert sum(x['skipped'] for x in r) > 0                           # all-masked micro-batches ran, no deadlock
    for x in r: torch.testing.assert_close(torch.tensor([l or 0. for l in x['history']], dtype=torch.float64),
                                           torch.tensor([l or 0. for l in h1['history']], dtype=torch.float64), **TOL)
    print('max |FSDP - 1 process| over LoRA weights:', assert_same_adapter(tmp_path, m1))
    moved = max((v - lora(lora_model())[n]).abs().max().item() for n, v in lora(m1).items())
    assert moved > 1e-3                                                # training moved the weights
    assert not (tmp_path/'checkpoint.pt').exists()

def test_fsdp_fp16_killed_and_resumed(tmp_path):
    p = launch(tmp_path, 'fp16', 3, ok=False)                         # dies after step 3, checkpoint of step 2 left
    assert p.returncode != 0 and not (tmp_path/'adapter').exists()
    st = torch.load(tmp_path/'checkpoint.pt', weights_only=False)
    assert st['step'] == 2 and st['sharded'] and st['scaler']['_growth_tracker'] == 2
    assert len(st['weights']) == 28 and all('lora_' in k for k in st['weights'])   # gathered in full, adapter only
    launch(tmp_path, 'fp16')                                          # resumes at step 2
    m1, h1 = one_process('fp16')
    r = ranks(tmp_path)
    assert all(x['loss_scale'] == h1['loss_scale'] for x in r)
    print('max |FSDP resumed - 1 process| over LoRA weights, fp16:', assert_same_adapter(tmp_path, m1))
    assert not (tmp_path/'checkpoint.pt').exists()

@pytest.fixture(scope='module')
def fsdp_runs(tmp_path_factory):
    "(FSDP study root, 1-process study root that reused its warm-up reference, the ranks' records)."
    tmp = tmp_path_factory.mktemp('fsdp'); cfg = tmp/'tiny.yaml'; cfg.write_text(TINY)
    launch('study', tmp/'two', cfg)
    recs = [json.loads((tmp/'two'/f'rank{r}.json').read_text())['sharded'] for r in range(2)]
    return (*one_process_beside(tmp, cfg), recs)

def test_fsdp_online_running_threshold(tmp_path):
    "`online` with a running threshold, FSDP on 2 processes: every step keeps what one process keeps; it trains alike."
    from fsdp_job import ONLINE, online_rows
    from tokenclean.models import load_tokenizer
    from tokenclean.training import TrainConfig, train
    launch(tmp_path, 'online')
    r0, r1 = ranks(tmp_path)
    tok = load_tokenizer('tiny-random')
    m1 = lora_model()
    h = train(m1, online_rows(tok), TrainConfig(**{**TRAIN, **ONLINE}), tok.pad_token_id, progress=False)
    assert h['token_weight'] == r0['token_weight'] == r1['token_weight'] > 0      # the same tokens kept, every step
    h0 = train(lora_model(), online_rows(tok), TrainConfig(**{**TRAIN, **ONLINE, 'online_window': 0}), tok.pad_token_id,
               progress=False)
    assert h0['history'] != h['history']                                          # the window, not each step's top k
    assert [l is None for l in h['history']] == [l is None for l in r0['history']]
    torch.testing.assert_close([l for l in r0['history'] if l is not None], [l for l in h['history'] if l is not None],
                               **TOL)
    assert_same_adapter(tmp_path, m1)

def test_fsdp_whole_study(fsdp_runs):
    two, one, recs = fsdp_runs
    for r in recs:   # warm-up, fixed, 2 self-evolving rounds: each sharded by FSDP, and let go by accelerate after it
        assert [d for d, _, _ in r] == ['warm-up', 'train: fixed', 'round 0: train', 'round 1: train'], r
        assert all(sharded and kept == 0 for _, sharded, kept in r), r
    assert_every_file_written_once(two)
    assert_same_scores(two, one)
    print('max |FSDP study - 1 process| over LoRA weights:', assert_same_selection_close_adapters(two, one))
