"""Fidelity to the Token Cleaning authors' code (UCSC-REAL/TokenCleaning @ 29362ab) on 120 default-pool chats.

The fixtures in `fixtures/authors/` are what their scripts printed with the packaged SmolLM2-135M-Instruct as base
(see the README there). Run with `pytest -s tests/test_fidelity.py` to see the agreement figures.
"""
import gzip, json
from pathlib import Path
import numpy as np, pytest, torch

FX = Path(__file__).parent/'fixtures'/'authors'

@pytest.fixture(scope='module')
def fixtures():
    chats = [json.loads(l) for l in (FX/'chats.jsonl').read_text().splitlines()]
    theirs = [json.loads(l) for l in gzip.open(FX/'authors_outputs.jsonl.gz', 'rt')]
    assert len(chats) == len(theirs) == 120 and all(c['id'] == t['id'] for c, t in zip(chats, theirs))
    return chats, theirs

def _resp(t:dict)->np.ndarray: return np.nonzero(np.asarray(t['labels']) != -100)[0]

def test_tulu_tokenization_equals_theirs(fixtures):
    "`template: tulu` gives their `input_ids` and `labels` exactly, for every chat (three truncated away, kept)."
    from tokenclean.models import load_tokenizer
    from tokenclean.data import normalise
    from tokenclean.tokenizing import tokenize_sample, tokenize_pool
    chats, theirs = fixtures
    tok = load_tokenizer('smollm2-135m-instruct')
    ours = [tokenize_sample(tok, normalise(c), 2048, 'tulu') for c in chats]
    same_ids = sum(np.array_equal(r['input_ids'], t['input_ids']) for r, t in zip(ours, theirs))
    same_labels = sum(np.array_equal(r['labels'], t['labels']) for r, t in zip(ours, theirs))
    n_tok, n_resp = sum(len(r['input_ids']) for r in ours), sum(int((r['labels'] != -100).sum()) for r in ours)
    print(f'\ntokenization: input_ids identical {same_ids}/120, labels identical {same_labels}/120; '
          f'{n_tok:,} tokens, {n_resp:,} response tokens (theirs 35,571 and 10,293)')
    assert (same_ids, same_labels) == (120, 120) and (n_tok, n_resp) == (35571, 10293)
    tp = tokenize_pool(tok, [normalise(c) for c in chats], 2048, 'tulu', verbose=False)
    assert len(tp) == 120 and tp.account['untrained'] == 3     # the paper mode keeps them, with all labels −100
    assert all(np.array_equal(r['input_ids'], t['input_ids']) for r, t in zip(tp.rows, theirs))

def _their_scores(chats, theirs, base=None):
    "Scores over their response tokens from their reference losses and `base` (default: their base losses)."
    from tokenclean.scoring import Scores
    resp = [_resp(t) for t in theirs]
    cat = lambda k, dt=np.float32: np.concatenate([np.asarray(t[k], dt)[p] for t, p in zip(theirs, resp)])
    return Scores([c['id'] for c in chats], [c['source'] for c in chats], np.cumsum([0] + [len(p) for p in resp]),
                  np.concatenate(resp).astype(np.int32), cat('input_ids', np.int32),
                  cat('base_loss') if base is None else base, cat('ref_loss')), cat('selected_labels', np.int64) != -100

def test_base_loss_equals_theirs(fixtures, tmp_path):
    """tokenclean's scoring of their Tulu tokens with the base model (skipping the 3 samples with no response token,
    cutting each sample after its last response token) gives their loss within 1e-4 at every response token, and
    with their reference losses keeps exactly the tokens they kept."""
    from tokenclean.core import set_threads
    from tokenclean.tokenizing import TokenizedPool
    from tokenclean.models import load_model
    from tokenclean.core import load_json
    from tokenclean.scoring import token_losses
    from tokenclean.selection import select
    set_threads(1)
    chats, theirs = fixtures
    rows = [dict(id=t['id'], source=c['source'], input_ids=np.asarray(t['input_ids'], np.int32),
                 labels=np.asarray(t['labels'], np.int32)) for c, t in zip(chats, theirs)]
    tp = TokenizedPool(rows, {}, 'authors-fixtures', 2048, 'tulu', {})
    store = token_losses(load_model('smollm2-135m-instruct').eval(), tp, tmp_path, pad_id=0, progress=False)
    ours, acc = store.read(), load_json(store.path/'meta.json')['run']
    base = np.concatenate([ours[t['id']][2] for t in theirs])
    sc, their_kept = _their_scores(chats, theirs, base)
    worst = float(np.abs(base - _their_scores(chats, theirs)[0].base).max())
    kept = select(sc, 'global', 0.6).keep
    print(f"\nbase-model loss: max |ours - theirs| = {worst:.2e} nats over {len(base):,} response tokens; "
          f"{acc['skipped']} samples skipped, {acc['tokens_run']:,} of {acc['tokens']:,} tokens run; "
          f"kept {kept.sum():,}, the same as theirs: {np.array_equal(kept, their_kept)}")
    assert len(base) == 10293 and worst < 1e-4
    assert acc['skipped'] == 3 and acc['tokens'] == 35571 and acc['tokens_run'] < acc['tokens']
    assert all(len(ours[t['id']][0]) == 0 for t in theirs if not len(_resp(t)))
    assert np.array_equal(kept, their_kept)

def test_global_selection_equals_theirs(fixtures):
    "Global top-60% of their base − reference losses keeps exactly the tokens they kept."
    from tokenclean.selection import select
    chats, theirs = fixtures
    sc, their_kept = _their_scores(chats, theirs)
    kept = select(sc, 'global', 0.6).keep
    jaccard = (kept & their_kept).sum() / (kept | their_kept).sum()
    print(f'\nselection: kept {kept.sum():,} of {len(kept):,} (theirs {their_kept.sum():,}), Jaccard {jaccard:.4f}')
    assert kept.sum() == their_kept.sum() == 6175 and np.array_equal(kept, their_kept)
