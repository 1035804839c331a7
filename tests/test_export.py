"""`export_cleaned` and `push_cleaned` against a local mock of the Hugging Face Hub's HTTP API: the pushed repository
holds the card and the Parquet rows, and `datasets.load_dataset` reads back exactly the exported rows."""
import base64, json, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import numpy as np
import pytest

class MockHub(BaseHTTPRequestHandler):
    "The endpoints an upload uses: create a repo, check the card's YAML, ask each file's upload mode, commit (base64)."
    root, log = None, []
    def log_message(self, *a): pass
    def _send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code); self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        data = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        parts, auth = self.path.split('?')[0].strip('/').split('/'), self.headers.get('Authorization', '')
        self.log.append((self.path.split('?')[0], auth))
        if auth != 'Bearer hf_mock': return self._send(401, {'error': 'Invalid credentials in Authorization header'})
        if parts[:3] == ['api', 'repos', 'create']:
            d = json.loads(data); repo = f"{d.get('organization') or 'me'}/{d['name']}"
            (self.root/repo).mkdir(parents=True, exist_ok=True)
            return self._send(200, {'url': f"http://{self.headers['Host']}/datasets/{repo}", 'name': repo, 'id': repo})
        if parts == ['api', 'validate-yaml']:                 # the README's metadata block must be YAML
            import yaml
            try: meta = yaml.safe_load(json.loads(data)['content'].split('---')[1])
            except (yaml.YAMLError, IndexError) as e: return self._send(400, {'errors': [{'message': str(e)}]})
            return self._send(200, {'errors': [], 'warnings': []} if isinstance(meta, dict) else {'errors': ['not a mapping']})
        if parts[:2] == ['api', 'datasets'] and parts[4] == 'preupload':
            files = json.loads(data)['files']
            return self._send(200, {'files': [dict(path=f['path'], uploadMode='regular', shouldIgnore=False) for f in files],
                                    'commitOid': '0' * 40})
        if parts[:2] == ['api', 'datasets'] and parts[4] == 'commit':
            repo = self.root/parts[2]/parts[3]
            for line in data.decode().splitlines():
                item = json.loads(line)
                if item['key'] == 'file':
                    f = repo/item['value']['path']; f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_bytes(base64.b64decode(item['value']['content']))
            return self._send(200, {'commitUrl': f"http://{self.headers['Host']}/datasets/{parts[2]}/{parts[3]}/commit/{'1' * 40}", 'commitOid': '1' * 40, 'pullRequestUrl': None})
        self._send(404, {'error': f'mock Hub: no route for {self.path}'})

@pytest.fixture
def hub(tmp_path, monkeypatch):
    "A running mock Hub (its endpoint), with offline mode lifted for this test only."
    import huggingface_hub.constants as C
    MockHub.root, MockHub.log = tmp_path/'hub', []
    srv = ThreadingHTTPServer(('127.0.0.1', 0), MockHub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False); monkeypatch.setattr(C, 'HF_HUB_OFFLINE', False)
    yield f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown()

@pytest.fixture(scope='module')
def cleaned():
    "Eight tokenized default-pool samples with a seeded random half of their response tokens kept."
    from tokenclean.pools import load_pool
    from tokenclean.tokenizing import tokenize_pool
    from tokenclean.models import load_tokenizer
    tp = tokenize_pool(load_tokenizer('smollm2-135m-instruct'), load_pool('default')[:8], 128, verbose=False)
    rng, rows = np.random.default_rng(0), []
    for r in tp.rows:
        lab = r['labels'].copy(); lab[rng.random(len(lab)) < 0.5] = -100
        rows.append(dict(r, labels=lab))
    return rows

def test_push_to_a_mock_hub(hub, cleaned, tmp_path):
    import datasets
    from huggingface_hub import HfApi
    from tokenclean.export import export_cleaned, push_cleaned
    out = export_cleaned(cleaned, tmp_path/'cleaned', dict(rule='global', k=0.5, model='smollm2-135m-instruct', pool='default'))
    url = push_cleaned(out, 'me/cleaned', api=HfApi(endpoint=hub, token='hf_mock'))
    assert url == 'https://huggingface.co/datasets/me/cleaned'
    assert [p for p, _ in MockHub.log] == ['/api/repos/create', '/api/validate-yaml', '/api/datasets/me/cleaned/preupload/main',
                                          '/api/datasets/me/cleaned/commit/main']
    repo = MockHub.root/'me'/'cleaned'
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob('*') if p.is_file()) == ['README.md', 'data/train-00000-of-00001.parquet']
    card = (repo/'README.md').read_text()
    assert card.startswith('---\nlicense: mit\ntags: [tokenclean') and 'path: data/train-*' in card
    assert 'Rule **global**, k = 0.5' in card and "load_dataset('me/cleaned', split='train')" in card
    assert 'HuggingFaceTB/SmolLM2-135M-Instruct' in card and 'smollm2-135m-instruct`' not in card
    # a fresh cache: `datasets` may reuse an earlier load of a same-named local folder
    pulled = datasets.load_dataset(str(repo), cache_dir=str(tmp_path/'hf-cache'))['train'].to_dict()
    assert pulled['labels'] == [r['labels'].tolist() for r in cleaned] and pulled['id'] == [r['id'] for r in cleaned]
    assert pulled['input_ids'] == [r['input_ids'].tolist() for r in cleaned]

def test_push_failure_is_one_clear_error(hub, cleaned, tmp_path):
    from huggingface_hub import HfApi
    from tokenclean.core import TokencleanError
    from tokenclean.export import export_cleaned, push_cleaned
    out = export_cleaned(cleaned, tmp_path/'cleaned')
    with pytest.raises(TokencleanError, match=r"push to https://huggingface.co/datasets/me/cleaned failed \(HfHubHTTPError: Client error '401 Unauthorized'.*HF_TOKEN"):
        try: push_cleaned(out, 'me/cleaned', api=HfApi(endpoint=hub, token='hf_wrong'))
        except TokencleanError as e: assert '\n' not in str(e); raise
    assert (out/'tokenclean.json').exists()                      # the export stays

def test_offline_push_says_so(cleaned, tmp_path, monkeypatch):
    from tokenclean.core import TokencleanError
    from tokenclean.export import export_cleaned
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(TokencleanError, match='HF_HUB_OFFLINE is set; unset it to push'):
        export_cleaned(cleaned, tmp_path/'cleaned', push_to_hub='me/cleaned')
    assert (tmp_path/'cleaned'/'tokenclean.json').exists()

@pytest.mark.parametrize('max_length', [None, 'short', 1024])
def test_trl_account_matches_trl(cleaned, tmp_path, max_length):
    "`trl_account` counts the samples TRL's SFTTrainer keeps, at no max_length, at one that cuts, and at its default."
    import warnings
    from trl import SFTConfig, SFTTrainer
    from tokenclean.export import cleaned_dataset, trl_account
    from tokenclean.models import load_model, load_tokenizer
    rows = [dict(r) for r in cleaned]
    rows[0]['labels'] = rows[0]['labels'].copy(); rows[0]['labels'][:] = -100          # an emptied sample
    first = sorted(int(np.flatnonzero(r['labels'] != -100)[0]) for r in rows if (r['labels'] != -100).any())
    L = first[len(first) // 2] if max_length == 'short' else max_length                # cuts away half the samples' labels
    args = SFTConfig(output_dir=str(tmp_path), max_length=L, report_to='none', use_cpu=True, bf16=False,
                     shuffle_dataset=False, disable_tqdm=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        tr = SFTTrainer(model=load_model('tiny-random', device='cpu'), args=args, train_dataset=cleaned_dataset(rows),
                        processing_class=load_tokenizer('smollm2-135m-instruct'))
    acc = trl_account(rows, L)
    assert len(tr.train_dataset) == acc['trl_samples']
    assert sorted(set(r['id'] for r in rows) - set(tr.train_dataset['id'])) == sorted(acc['trl_dropped_ids'])
    if max_length is None: assert acc['trl_samples'] == len(rows)                       # emptied samples kept
    if max_length == 'short': assert acc['trl_dropped'] > 1                            # more than the emptied one
    if max_length == 1024: assert acc['trl_dropped_ids'] == [rows[0]['id']]
