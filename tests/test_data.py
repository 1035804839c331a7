"""Property tests of the data layer: random chats with random unicode, roles and turn orders (a seeded generator).

Every record is either tokenized, with labels on exactly its trained assistant spans, or reported in the account
with its place and a reason; nothing crashes, and `n in == n out + every reported drop`.
"""
import json, random
from pathlib import Path
import numpy as np, pytest
from tokenclean.core import TokencleanError
from tokenclean.data import check_account, format_account
from tokenclean.pools import load_pool
from tokenclean.tokenizing import tokenize_pool

ALPHABET = ('abcXYZ019 .,;:!?-_\'"()[]{}<>/\\|@#$%^&*+=~`\n\t  éñüßøÆ ΩλΣ жЯ 中文字 日本語 한국 عربي עברית हिन्दी '
            '\u0301\u200d\u200b\u202e\ufeff \U0001F600\U0001F9D1\u200d\U0001F4BB \U00010348')
TRICKY = ['<|im_end|>', '<|im_start|>', '<|user|>', '<|assistant|>\n', '</s>', '\r\n', '   ', '']
ROLES = ['system', 'user', 'assistant', 'human', 'gpt', 'tool', 'function', 'ipython', 'developer', 'robot', None]

def _text(rng):
    s = ''.join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 30)))
    if rng.random() < 0.15: s = s[:len(s) // 2] + rng.choice(TRICKY) + s[len(s) // 2:]
    if rng.random() < 0.02: s += '\ud800'                                 # a lone surrogate
    return s

def _message(rng):
    role = rng.choice(ROLES) if rng.random() < 0.3 else rng.choice(['user', 'assistant'])
    m = {'role': role, 'content': _text(rng)}
    r = rng.random()
    if r < 0.03: m['content'] = rng.choice([3, None, {'x': 1}])
    elif r < 0.06: m['content'] = [{'type': 'text', 'text': _text(rng)}, {'type': 'text', 'text': _text(rng)}]
    elif r < 0.08: m['content'] = [{'type': 'image_url', 'image_url': {'url': 'u'}}]
    if role == 'assistant' and rng.random() < 0.12: m['weight'] = rng.choice([0, 1, 0.5])
    if role == 'assistant' and rng.random() < 0.04:
        m['tool_calls'] = [{'type': 'function', 'function': {'name': 'lookup', 'arguments': '{"q": 1}'}}]
    return m

def _record(rng, i):
    r = rng.random()
    if r < 0.03: return '{"messages": ['                                 # a malformed line
    if r < 0.05: return json.dumps(rng.choice([[1, 2], 'text', {'text': 'no layout'}]))
    rec = {'messages': [_message(rng) for _ in range(rng.randint(0, 6))]}
    if rng.random() < 0.9: rec['id'] = f'r{i}'
    return json.dumps(rec)

def _pool_file(tmp_path, seed, n):
    rng = random.Random(seed)
    lines = [_record(rng, i) for i in range(n)]
    for _ in range(n // 40): lines.append(lines[rng.randrange(len(lines))])   # exact duplicates
    p = Path(tmp_path)/f'random-{seed}.jsonl'
    p.write_text('\n'.join(lines) + '\n')
    return p, lines

SMOL_SYSTEM = '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n'

def _chatml(messages):
    "SmolLM2's rendering, written independently: (text, trained character spans)."
    text = '' if messages[0]['role'] == 'system' else SMOL_SYSTEM
    spans = []
    for m in messages:
        text += f"<|im_start|>{m['role']}\n"
        a = len(text)
        text += m['content'] + '<|im_end|>'
        if m['role'] == 'assistant' and m.get('weight', 1) != 0 and not m.get('tool_calls'):
            spans.append((a, len(text)))
        text += '\n'
    return text, spans

@pytest.fixture(scope='module')
def tok():
    from tokenclean.models import load_tokenizer
    return load_tokenizer('smollm2-135m-instruct')

def _accounted(tp, lines, path):
    "Every line is a row, or is listed in the account (by its place or its id) with a reason."
    acc = check_account(tp.account)
    rows = set(tp.ids)
    by_where = {r['where']: r for r in acc['records'] if r['where']}
    by_id = {r['id']: r for r in acc['records'] if r['id'] and r['action'] == 'dropped'}
    for i, line in enumerate(lines, 1):
        where = f'{path}:{i}'
        rid = f'r{i - 1}' if f'"id": "r{i - 1}"' in line else None
        assert where in by_where or rid in rows or rid in by_id or (rid is None and line.strip()), (i, line)
        rec = by_where.get(where) or by_id.get(rid)
        if rec: assert rec['reason'] and rec['action'] in ('skipped', 'merged', 'dropped')
    assert acc['loaded'] == len(lines)
    return acc

@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_chats_model_template(tok, tmp_path, seed):
    "Model template: masks equal the independently rendered assistant spans, or the record is reported."
    p, lines = _pool_file(tmp_path, seed, 300)
    ss = load_pool(str(p), on_bad_record='skip')
    tp = tokenize_pool(tok, ss, max_len=4096, verbose=False)
    acc = _accounted(tp, lines, p)
    print(f'\nseed {seed}: {format_account(acc)}')
    assert len(tp) > 50 and acc['skipped'] and acc['dropped']
    samples = {s['id']: s for s in ss}
    for r in tp.rows:
        text, spans = _chatml(samples[r['id']]['messages'])
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        assert r['input_ids'].tolist() == enc['input_ids'], r['id']
        want = [any(a < e and b > s for s, e in spans) for a, b in enc['offset_mapping']]
        assert (r['labels'] != -100).tolist() == want, r['id']
        covered = np.zeros(len(text), bool)
        for (a, b), w in zip(enc['offset_mapping'], want): covered[a:b] |= w
        for s, e in spans: assert covered[s:e].all(), r['id']             # every trained span is fully covered

@pytest.mark.parametrize('seed', [3, 4])
def test_random_chats_tulu_and_truncation(tok, tmp_path, seed):
    "Tulu template and a short max_len: nothing crashes, every record is accounted, truncation counted."
    p, lines = _pool_file(tmp_path, seed, 200)
    ss = load_pool(str(p), on_bad_record='skip')
    for template, max_len in (('tulu', 2048), ('model', 24)):
        tp = tokenize_pool(tok, ss, max_len=max_len, template=template, verbose=False)
        acc = _accounted(tp, lines, p)
        assert all(len(r['input_ids']) <= max_len for r in tp.rows)
        if template == 'tulu':
            assert 'tool turns in the tulu format' in acc['dropped'] or not any(
                m['role'] == 'tool' or m.get('tool_calls') for s in ss for m in s['messages'])
            for r in tp.rows:                                            # trained text holds each trained response
                s = next(x for x in ss if x['id'] == r['id'])
                trained = tok.decode(r['input_ids'][r['labels'] != -100])
                for m in s['messages']:
                    if m['role'] == 'assistant' and m.get('weight', 1) != 0 and m['content'].strip():
                        assert m['content'].strip() in trained, (r['id'], m['content'])
        else: assert acc['truncated']['samples'] > 0 and acc['truncated']['response_tokens_cut'] > 0

def test_errors_name_file_line_sample_field(tmp_path):
    "With on_bad_record='error' the first bad record stops the load, naming file, line, sample and field."
    p = tmp_path/'pool.jsonl'
    p.write_text('{"id": "ok", "prompt": "q", "completion": "a"}\n'
                 '{"id": "s7", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 5}]}\n')
    with pytest.raises(TokencleanError, match=r'pool.jsonl:2: sample s7: messages\[1\].content is int'):
        load_pool(str(p))

def test_formats_load_the_same(tmp_path):
    "Every accepted file format and folder gives the same samples."
    import gzip, datasets, pyarrow as pa, pyarrow.parquet as pq
    recs = [{'id': f'x{i}', 'messages': [{'role': 'user', 'content': f'q{i}'}, {'role': 'assistant', 'content': 'a'}]}
            for i in range(5)]
    text = ''.join(json.dumps(r) + '\n' for r in recs)
    (tmp_path/'a.JSONL.GZ').write_bytes(gzip.compress(text.encode()))
    (tmp_path/'b.json').write_text(json.dumps({'train': recs}))
    with pa.CompressedOutputStream(str(tmp_path/'c.ndjson.zst'), 'zstd') as f: f.write(text.encode())
    pq.write_table(pa.Table.from_pylist(recs), tmp_path/'d.Parquet')
    datasets.Dataset.from_list(recs).save_to_disk(str(tmp_path/'e'))
    (tmp_path/'f').mkdir()
    pq.write_table(pa.Table.from_pylist(recs[:2]), tmp_path/'f'/'train-00000-of-00002.parquet')
    (tmp_path/'f'/'train-00001-of-00002.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in recs[2:]))
    arrow = next((tmp_path/'e').glob('*.arrow'))
    want = [(r['id'], r['messages']) for r in recs]
    for name in ('a.JSONL.GZ', 'b.json', 'c.ndjson.zst', 'd.Parquet', 'e', 'f', arrow.relative_to(tmp_path)):
        ss = load_pool(str(tmp_path/name))
        assert [(s['id'], s['messages']) for s in ss] == want, name
        assert ss.account['loaded'] == ss.account['kept'] == 5

def test_mixed_layouts_in_one_table(tmp_path):
    "A Parquet file whose rows mix layouts (the unified schema fills absent fields with null) maps each row by its own."
    import pandas as pd
    recs = [{'id': 'c', 'messages': [{'role': 'user', 'content': 'q'},
                                     {'role': 'assistant', 'content': 'a', 'weight': 0}]},
            {'id': 's', 'conversations': [{'from': 'human', 'value': 'q'}, {'from': 'gpt', 'value': 'a'}]},
            {'id': 'p', 'instruction': 'q', 'input': None, 'output': 'a'},
            {'id': 'pc', 'prompt': 'q', 'completion': 'a'}]
    pd.DataFrame(recs).to_parquet(tmp_path/'mixed.parquet')
    ss = load_pool(str(tmp_path/'mixed.parquet'))
    assert [[(m['role'], m['content']) for m in s['messages']] for s in ss] == [[('user', 'q'), ('assistant', 'a')]] * 4
    assert [m.get('weight', 1) for s in ss for m in s['messages']] == [1, 0] + [1] * 6

def test_line_separators_inside_strings(tmp_path):
    "JSON Lines written raw (ensure_ascii=False, as pandas and jq -c write) load the same as escaped ones."
    rng = random.Random(7)
    recs = [{'id': f'u{i}', 'messages': [{'role': 'user', 'content': _text(rng).replace('\ud800', '') + sep},
                                         {'role': 'assistant', 'content': f'a{sep}b'}]}
            for i, sep in enumerate(['\u2028', '\u2029', '\u0085', '\x1c', '\x1d', '\x1e', '\x0b', '\x0c', '\r'] * 3)]
    raw, esc = tmp_path/'raw.jsonl', tmp_path/'esc.jsonl'
    raw.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in recs), encoding='utf-8')
    esc.write_text(''.join(json.dumps(r) + '\n' for r in recs))
    a, b = load_pool(str(raw)), load_pool(str(esc))
    assert len(a) == len(recs) and [s['messages'] for s in a] == [s['messages'] for s in b]

def test_special_token_strings_never_become_control_tokens(tok, tmp_path):
    "A sample's text cannot forge a turn: kept rows have one <|im_start|> per rendered turn; the others are counted."
    p, lines = _pool_file(tmp_path, 5, 300)
    ss = load_pool(str(p), on_bad_record='skip')
    tp = tokenize_pool(tok, ss, max_len=4096, verbose=False)
    assert tp.dropped.get('special token in content', 0) > 0
    start = tok.convert_tokens_to_ids('<|im_start|>')
    samples = {s['id']: s for s in ss}
    for r in tp.rows:
        msgs = samples[r['id']]['messages']
        assert (r['input_ids'] == start).sum() == len(msgs) + (msgs[0]['role'] != 'system'), r['id']
    for template in ('model', 'tulu'):
        tps = tokenize_pool(tok, ss, template=template, verbose=False)
        bad = [s['id'] for s in ss if any(t in m['content'] for m in s['messages'] for t in TRICKY[:2])]
        assert bad and not set(bad) & set(tps.ids)

def _naive_kinds(offsets, spans, kinds):
    "Per token, character by character: the kind of the span sharing most characters with it (first on ties), or -1."
    out = []
    for a, b in offsets:
        shared = [sum(s <= c < e for c in range(a, b)) for s, e, _ in spans]
        out.append(kinds.index(spans[shared.index(max(shared))][2]) if shared and max(shared) > 0 else -1)
    return out

def _tulu_render(msgs, eos):
    "The Tulu text (contents stripped) and, per assistant turn, (content start, characters stripped before it)."
    text, starts = '', []
    for m in msgs:
        text += f"<|{m['role']}|>\n"
        if m['role'] == 'assistant': starts.append((len(text), len(m['content']) - len(m['content'].lstrip())))
        text += m['content'].strip() + (eos if m['role'] == 'assistant' else '') + '\n'
    return text.strip(), starts

@pytest.mark.parametrize('seed,template', [(0, 'model'), (1, 'model'), (2, 'tulu')])
def test_random_spans_match_a_naive_oracle(tok, seed, template):
    "Random spans on random chats: `kind` equals a character-by-character count over an independent rendering."
    from tokenclean.data import normalise
    rng, samples = random.Random(seed), []
    for i in range(60):
        msgs = []
        for t in range(rng.randint(1, 3)):
            q = ''.join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 20)))
            a = ''.join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 60)))
            cuts = sorted(rng.sample(range(len(a) + 1), min(len(a) + 1, 2 * rng.randint(0, 3))))
            spans = [{'start': s, 'end': e, 'kind': rng.choice('xyz')} for s, e in zip(cuts[::2], cuts[1::2]) if s < e]
            msgs += [{'role': 'user', 'content': q}, {'role': 'assistant', 'content': a, 'spans': spans}]
        samples.append(normalise({'id': f's{i}', 'messages': msgs}))
    tp = tokenize_pool(tok, samples, max_len=4096, template=template, verbose=False)
    assert tp.kinds == tuple(sorted({sp['kind'] for s in samples for m in s['messages'] for sp in m.get('spans', [])}))
    by_id = {s['id']: s for s in samples}
    assert len(tp) > 40
    for r in tp.rows:
        msgs = by_id[r['id']]['messages']
        answers = [m for m in msgs if m['role'] == 'assistant']
        if template == 'model':
            text, trained = _chatml(msgs)
            starts = [(a, 0, len(m['content'])) for (a, _), m in zip(trained, answers)]   # rendered as it is
        else:
            text, st = _tulu_render(msgs, tok.eos_token)
            starts = [(c0, lead, len(m['content'].strip())) for (c0, lead), m in zip(st, answers)]
        spans = []
        for (c0, lead, n), m in zip(starts, answers):
            for sp in m.get('spans', []):
                a, b = (c0 + min(max(sp[k] - lead, 0), n) for k in ('start', 'end'))
                if a < b: spans.append((a, b, sp['kind']))
        enc = tok(text, add_special_tokens=template == 'tulu', return_offsets_mapping=True)
        assert r['input_ids'].tolist() == enc['input_ids'], r['id']
        want = np.array(_naive_kinds(enc['offset_mapping'], spans, tp.kinds))
        want[r['labels'] == -100] = -1
        assert r['kind'].tolist() == want.tolist(), r['id']
