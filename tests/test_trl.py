"""A tokenclean export trains unchanged with TRL's `SFTTrainer` and with `transformers.Trainer` (packaged SmolLM2, small
LoRA): each trainer's loss on a batch is tokenclean's masked loss, a rejected token has no effect on the gradient, and TRL
drops exactly the samples the account says it drops. The token rules (`tokenclean.trl_loss`) give, as
TRL's `compute_loss_func`, the loss and gradient of tokenclean's own `train_step`."""
import math, warnings
import numpy as np
import pytest, torch

trl = pytest.importorskip('trl', reason='TRL is a dev dependency: pip install -e .[dev]')
MODEL = 'smollm2-135m-instruct'

def toy_scores(rows, seed=0, emptied=3):
    "Seeded random scores over the response tokens of `rows`; sample `emptied` scores lowest."
    from tokenclean.scoring import Scores
    rng, pos = np.random.default_rng(seed), [np.flatnonzero(r['labels'] != -100).astype(np.int32) for r in rows]
    base = [rng.normal(size=len(p)) - (50 if i == emptied else 0) for i, p in enumerate(pos)]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pos])])
    return Scores([r['id'] for r in rows], [r['source'] for r in rows], offsets, np.concatenate(pos),
                  np.concatenate([r['input_ids'][p] for r, p in zip(rows, pos)]),
                  np.concatenate(base).astype(np.float32), np.zeros(offsets[-1], np.float32))

@pytest.fixture(scope='module')
def export(tmp_path_factory):
    "(tokenizer, cleaned rows, their account, the exported dataset loaded back from disk)."
    import datasets
    from tokenclean.pools import load_pool
    from tokenclean.tokenizing import tokenize_pool
    from tokenclean.export import export_cleaned, export_meta
    from tokenclean.models import load_tokenizer
    from tokenclean.selection import select, apply_selection
    datasets.disable_progress_bars()
    tok = load_tokenizer(MODEL)
    tp = tokenize_pool(tok, load_pool('default')[:12], 128, verbose=False)
    sel = select(toy_scores(tp.rows), 'global', 0.6)
    rows = [dict(r, response=o['labels']) for r, o in zip(apply_selection(sel, tp.rows), tp.rows)]
    path = export_cleaned(rows, tmp_path_factory.mktemp('export')/'cleaned', export_meta(sel, dict(model=MODEL)))
    from tokenclean.core import load_json
    return tok, rows, load_json(path/'tokenclean.json')['account'], datasets.load_from_disk(str(path))

def lora():
    from peft import LoraConfig
    return LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=['q_proj', 'v_proj'], task_type='CAUSAL_LM')

def grads(model, loss):
    "Gradients of `loss` w.r.t. the trainable parameters (zeroed afterwards)."
    loss.backward()
    out = [p.grad.detach().clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad(set_to_none=True)
    return out

def ours(model, rows, pad_id):
    "tokenclean's masked loss: the mean NLL of the kept tokens."
    from tokenclean.scoring import collate, token_nll
    return token_nll(model, **collate(rows, pad_id)).mean()

def rejected(r):
    "Positions of the response tokens of row `r` that the selection rejected."
    return np.flatnonzero((r['response'] != -100) & (r['labels'] == -100))

def check_loss_and_gradient(model, loss_fn, rows, pad_id):
    "`loss_fn(rows)` (a trainer's loss on a batch) equals tokenclean's, in value and gradient; rejected targets do nothing."
    model.train()
    batch = rows[:4]
    a, b = loss_fn(batch), ours(model, batch, pad_id)
    assert math.isclose(a.item(), b.item(), rel_tol=1e-5), (a.item(), b.item())
    ga, gb = torch.cat([g.flatten() for g in grads(model, a)]), torch.cat([g.flatten() for g in grads(model, b)])
    assert (ga - gb).norm() <= 1e-4 * gb.norm(), ((ga - gb).norm(), gb.norm())   # the same gradient, to float rounding
    # A rejected response token made the last one of its sample: its own id is then only a target (no later token sees
    # it), so changing it leaves the gradient exactly as it was; as a kept token, the same change moves the gradient.
    r, t = next((r, t) for r in rows for t in rejected(r) if t > np.flatnonzero(r['labels'] != -100).min())
    cut = dict(r, input_ids=r['input_ids'][:t + 1].copy(), labels=r['labels'][:t + 1].copy())
    other = dict(cut, input_ids=cut['input_ids'].copy())
    other['input_ids'][t] = (int(cut['input_ids'][t]) + 1) % 1000 + 1
    g0, g1 = grads(model, loss_fn([cut])), grads(model, loss_fn([other]))
    for x, y in zip(g0, g1): assert torch.equal(x, y)
    kept0, kept1 = dict(cut, labels=cut['labels'].copy()), dict(other, labels=other['labels'].copy())
    kept0['labels'][t], kept1['labels'][t] = cut['input_ids'][t], other['input_ids'][t]
    k0, k1 = grads(model, loss_fn([kept0])), grads(model, loss_fn([kept1]))
    assert any(not torch.allclose(x, y) for x, y in zip(k0, k1))

def as_example(r): return dict(input_ids=r['input_ids'].tolist(), labels=r['labels'].tolist())

def test_sft_trainer(export, tmp_path):
    from trl import SFTConfig, SFTTrainer
    from tokenclean.models import load_model
    tok, rows, acc, ds = export
    args = SFTConfig(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=2, learning_rate=1e-4, bf16=False,
                     use_cpu=True, logging_steps=1, save_strategy='no', report_to='none', disable_tqdm=True,
                     shuffle_dataset=False, gradient_checkpointing=False, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        tr = SFTTrainer(model=load_model(MODEL, device='cpu'), args=args, train_dataset=ds, processing_class=tok, peft_config=lora())
    # TRL drops exactly the samples the account reports, and keeps every other label as it is
    assert acc['emptied_samples'] >= 1 and len(tr.train_dataset) == acc['trl_samples']
    assert set(ds['id']) - set(tr.train_dataset['id']) == set(acc['emptied_ids'])
    by_id = {r['id']: r for r in rows}
    assert all(l == by_id[i]['labels'].tolist() for i, l in zip(tr.train_dataset['id'], tr.train_dataset['labels']))
    kept_rows = [by_id[i] for i in tr.train_dataset['id']]
    def trl_loss(batch):
        b = tr.data_collator([as_example(r) for r in batch])
        return tr.compute_loss(tr.model, dict(b))
    check_loss_and_gradient(tr.model, trl_loss, kept_rows, tok.pad_token_id)
    out = tr.train()
    assert out.global_step == 3 and math.isfinite(out.training_loss)

def test_transformers_trainer(export, tmp_path):
    from peft import get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments
    from tokenclean.models import load_model
    tok, rows, acc, ds = export
    kept = ds.filter(lambda r: any(l != -100 for l in r['labels']))
    assert len(kept) == acc['trl_samples']
    model = get_peft_model(load_model(MODEL, device='cpu'), lora())
    collator = DataCollatorForSeq2Seq(tok, padding=True)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=2, learning_rate=1e-4,
                             use_cpu=True, save_strategy='no', report_to='none', disable_tqdm=True, seed=0)
    tr = Trainer(model=model, args=args, train_dataset=kept, data_collator=collator)
    def hf_loss(batch):
        b = collator([dict(as_example(r), attention_mask=[1] * len(r['input_ids'])) for r in batch])
        return tr.compute_loss(tr.model, dict(b))
    check_loss_and_gradient(tr.model, hf_loss, [r for r in rows if (r['labels'] != -100).any()], tok.pad_token_id)
    out = tr.train()
    assert out.global_step == 3 and math.isfinite(out.training_loss)

@pytest.mark.parametrize('rule', ['dft', 'online', 'entropy', 'prob_threshold'])
def test_sft_trainer_token_rules(export, tmp_path, rule):
    "`TokenRuleLoss` as TRL's `compute_loss_func` (and `BaseLossCollator`): loss and gradient = `train_step`'s."
    from trl import SFTConfig, SFTTrainer
    from tokenclean.models import load_model
    from tokenclean.training import TrainConfig, train_step
    from tokenclean.trl_loss import BaseLossCollator, TokenRuleLoss
    tok, rows, acc, ds = export
    rng = np.random.default_rng(0)   # stored base losses: random, so that no two scores base − current tie
    base = [np.where(r['labels'] != -100, rng.normal(3, 1, len(r['labels'])), np.nan).astype(np.float32) for r in rows]
    ds = ds.add_column('base_loss', [b.tolist() for b in base])
    by_id = {r['id']: dict(r, base_loss=b) for r, b in zip(rows, base)}
    args = SFTConfig(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=2, learning_rate=1e-4,
                     bf16=False, use_cpu=True, logging_steps=1, save_strategy='no', report_to='none', disable_tqdm=True,
                     shuffle_dataset=False, gradient_checkpointing=False, seed=0, remove_unused_columns=False)
    loss = TokenRuleLoss(rule)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        tr = SFTTrainer(model=load_model(MODEL, device='cpu'), args=args, train_dataset=ds, processing_class=tok,
                        peft_config=lora(), compute_loss_func=loss)
    tr.data_collator = BaseLossCollator(tr.data_collator)
    loss.attach(tr.model)
    kept = [by_id[i] for i in tr.train_dataset['id']][:4]
    model = tr.model
    model.train()
    b = tr.data_collator([dict(as_example(r), base_loss=r['base_loss'].tolist()) for r in kept])
    a = tr.compute_loss(model, dict(b))
    ga = torch.cat([g.flatten() for g in grads(model, a)])
    stats = dict(skipped_steps=0, skipped_micro_batches=0, trained_tokens=0)
    ours = train_step(model, kept, [0, 1, 2, 3], TrainConfig(micro_batch=4, rule=rule), tok.pad_token_id, stats)
    gb = torch.cat([p.grad.detach().flatten().clone() for p in model.parameters() if p.requires_grad])
    model.zero_grad(set_to_none=True)
    assert math.isclose(a.item(), ours, rel_tol=1e-5), (rule, a.item(), ours)
    assert (ga - gb).norm() <= 1e-4 * gb.norm(), (rule, (ga - gb).norm(), gb.norm())
    n = sum(int((r['labels'][1:] != -100).sum()) for r in kept)
    if rule == 'online': assert stats['token_weight'] == math.floor(0.6 * n)
    if rule == 'prob_threshold': assert 0 < stats['token_weight'] < n     # ProFit's τ = 0.1 keeps some, masks others
    out = tr.train()
    assert out.global_step == 3 and math.isfinite(out.training_loss)

def test_transformers_trainer_online(export, tmp_path):
    "`TokenRuleLoss('online')` as `Trainer`'s `compute_loss_func` (and `BaseLossCollator`): = `train_step`."
    from peft import get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments
    from tokenclean.models import load_model
    from tokenclean.training import TrainConfig, train_step
    from tokenclean.trl_loss import BaseLossCollator, TokenRuleLoss
    import datasets
    tok, rows, acc, ds = export
    rng = np.random.default_rng(1)
    kept = [r for r in rows if (r['labels'] != -100).any()]
    kept = [dict(r, base_loss=rng.normal(3, 1, len(r['labels'])).astype(np.float32)) for r in kept]
    data = datasets.Dataset.from_dict(dict(input_ids=[r['input_ids'].tolist() for r in kept],
                                           attention_mask=[[1] * len(r['input_ids']) for r in kept],
                                           labels=[r['labels'].tolist() for r in kept],
                                           base_loss=[r['base_loss'].tolist() for r in kept]))
    model = get_peft_model(load_model(MODEL, device='cpu'), lora())
    loss = TokenRuleLoss('online', rule_k=0.5)
    collator = BaseLossCollator(DataCollatorForSeq2Seq(tok, padding=True))
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=2, learning_rate=1e-4,
                             use_cpu=True, save_strategy='no', report_to='none', disable_tqdm=True, seed=0,
                             remove_unused_columns=False)
    tr = Trainer(model=model, args=args, train_dataset=data, data_collator=collator, compute_loss_func=loss)
    loss.attach(tr.model)
    model.train()
    b = collator([dict(as_example(r), attention_mask=[1] * len(r['input_ids']), base_loss=r['base_loss'].tolist())
                  for r in kept[:4]])
    a = tr.compute_loss(tr.model, dict(b))
    ga = torch.cat([g.flatten() for g in grads(model, a)])
    stats = dict(skipped_steps=0, skipped_micro_batches=0, trained_tokens=0)
    ours = train_step(model, kept[:4], [0, 1, 2, 3], TrainConfig(micro_batch=4, rule='online', rule_k=0.5),
                      tok.pad_token_id, stats)
    gb = torch.cat([p.grad.detach().flatten().clone() for p in model.parameters() if p.requires_grad])
    model.zero_grad(set_to_none=True)
    assert math.isclose(a.item(), ours, rel_tol=1e-5), (a.item(), ours)
    assert (ga - gb).norm() <= 1e-4 * gb.norm(), ((ga - gb).norm(), gb.norm())
    out = tr.train()
    assert out.global_step == 3 and math.isfinite(out.training_loss)

def test_dft_matches_trl_loss_type_dft(export, tmp_path):
    "tokenclean's `dft` rule is TRL's own `loss_type='dft'` (weights and normalisation): same loss, same gradient."
    from trl import SFTConfig, SFTTrainer
    from tokenclean.models import load_model
    from tokenclean.training import TrainConfig, train_step
    tok, rows, acc, ds = export
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        args = SFTConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, bf16=False, use_cpu=True,
                         report_to='none', disable_tqdm=True, gradient_checkpointing=False, seed=0, loss_type='dft')
        tr = SFTTrainer(model=load_model(MODEL, device='cpu'), args=args, train_dataset=ds, processing_class=tok,
                        peft_config=lora())
    kept = [r for r in rows if (r['labels'] != -100).any()][:4]
    model = tr.model
    model.train()
    a = tr.compute_loss(model, dict(tr.data_collator([as_example(r) for r in kept])))
    ga = torch.cat([g.flatten() for g in grads(model, a)])
    stats = dict(skipped_steps=0, skipped_micro_batches=0, trained_tokens=0)
    ours = train_step(model, kept, [0, 1, 2, 3], TrainConfig(micro_batch=4, rule='dft'), tok.pad_token_id, stats)
    gb = torch.cat([p.grad.detach().flatten().clone() for p in model.parameters() if p.requires_grad])
    model.zero_grad(set_to_none=True)
    assert math.isclose(a.item(), ours, rel_tol=1e-5), (a.item(), ours)
    assert (ga - gb).norm() <= 1e-4 * gb.norm(), ((ga - gb).norm(), gb.norm())
