"End-to-end tests of the installed `tokenclean` command."
import json, subprocess
from pathlib import Path
import pytest
from conftest import run

def test_help_lists_every_stage(tokenclean):
    out = run([tokenclean, '--help']).stdout
    for cmd in ('study', 'warmup', 'score', 'select', 'train', 'export', 'config'): assert cmd in out
    for cmd in ('study', 'train', 'export'):
        assert '--config' in run([tokenclean, cmd, '--help']).stdout

def test_version(tokenclean):
    import tokenclean as tc
    assert run([tokenclean, '--version']).stdout.strip() == f'tokenclean {tc.__version__}'

def test_bad_config_key_is_one_clear_line(tokenclean):
    p = run([tokenclean, 'config', '--set', 'max_lenn=3'], check=False)
    assert p.returncode == 2
    assert "unknown config key 'max_lenn' (did you mean 'max_len'?)" in p.stderr
    assert 'Traceback' not in p.stderr

def test_paper_configs_resolve(tokenclean):
    out = run([tokenclean, 'config', '--config', 'paper-llama-3.1-8b']).stdout
    assert 'model: meta-llama/Llama-3.1-8B' in out and 'batch_size: 48' in out and 'lora_r: 64' in out

def test_tiny_study_end_to_end(tokenclean, tiny_config, tmp_path):
    "All methods, two seeds, via the CLI: results, table and figures written; a re-run skips everything."
    p = run([tokenclean, 'study', '--config', str(tiny_config)])
    assert 'study finished' in p.stdout and '| method' in p.stdout
    root = Path(p.stdout.strip().split(' in ')[-1])
    results = json.loads((root/'results.json').read_text())
    assert {(r['method'], r['seed']) for r in results} >= {(m, s) for m in ('full', 'random', 'rho', 'fixed', 'self_evolving') for s in (1, 2)}
    assert all(r['heldout_loss'] > 0 for r in results)
    assert (root/'table.md').exists() and (root/'figures'/'methods.png').exists() and (root/'figures'/'scores.svg').exists()
    se = [r for r in results if r['method'] == 'self_evolving']
    for r in se:
        for t in range(1, len(r['rounds'])): assert r['rounds'][t]['reference_fp'] == r['rounds'][t - 1]['model_fp']
    # re-running finds everything done
    runs = lambda: {f: f.stat().st_mtime for f in root.glob('*/results.json')}   # one per run folder
    mtimes = runs(); assert len(mtimes) == 11
    run([tokenclean, 'study', '--config', str(tiny_config)])
    assert mtimes == runs()

def test_export_cleaned_dataset(tokenclean, tiny_config, tmp_path):
    out = tmp_path/'cleaned'
    p = run([tokenclean, 'export', '--config', str(tiny_config), '--method', 'fixed', '--out', str(out)])
    import datasets
    ds = datasets.load_from_disk(str(out))
    assert set(ds.column_names) >= {'input_ids', 'attention_mask', 'labels'}
    kept = sum(sum(l != -100 for l in row) for row in ds['labels'])
    total = sum(len(row) for row in ds['input_ids'])
    assert 0 < kept < total
    meta = json.loads((out/'tokenclean.json').read_text())
    assert (meta['method'], meta['rule'], meta['k'], meta['model']) == ('fixed', 'global', 0.6, 'tiny-random')
    assert meta['account']['samples'] == len(ds) and meta['account']['kept_tokens'] == sum(sum(l != -100 for l in r[1:]) for r in ds['labels'])
    card = (out/'README.md').read_text()
    assert 'Rule **global**, k = 0.6' in card and '`tiny-random`' in card and 'max_len: 128' in card
    assert meta['config']['pool_limit'] == 40                      # the whole config is in tokenclean.json
    assert f"exported {len(ds)} samples" in p.stdout and "TRL's SFTTrainer drops them" in p.stdout

def test_export_push_offline_is_one_clear_line(tokenclean, tiny_config, tmp_path):
    p = run([tokenclean, 'export', '--config', str(tiny_config), '--out', str(tmp_path/'c'), '--push-to-hub', 'me/c'], check=False)
    assert p.returncode == 2 and 'Traceback' not in p.stderr
    assert 'HF_HUB_OFFLINE is set; unset it to push' in p.stderr and (tmp_path/'c'/'tokenclean.json').exists()

def test_study_help_lists_every_setting(tokenclean):
    "Every StudyConfig and TrainConfig field is in `tokenclean study --help`, with its default and doc."
    import dataclasses, re
    from tokenclean.config import StudyConfig
    from tokenclean.training import TrainConfig
    out = run([tokenclean, 'study', '--help']).stdout
    for f in dataclasses.fields(StudyConfig):
        if f.name != 'train': assert re.search(rf'^  {f.name} +\S', out, re.M), f.name
    for f in dataclasses.fields(TrainConfig): assert re.search(rf'^  train\.{f.name} +\S', out, re.M), f.name
    assert re.search(r'^  k +0\.6 +share of response tokens kept$', out, re.M)
    assert '(no doc' not in out
    for cmd in ('warmup', 'score', 'select', 'train', 'export', 'config'):
        assert 'training settings (--set train.KEY=VALUE)' in run([tokenclean, cmd, '--help']).stdout

def test_select_takes_study_methods(tokenclean, tiny_config):
    "`select --method fixed|rho|random|full` maps each method to its rule."
    for method, rule in [('fixed', 'global'), ('rho', 'per_sample'), ('random', 'random'), ('full', 'full')]:
        out = run([tokenclean, 'select', '--config', str(tiny_config), '--method', method]).stdout
        assert f'{rule} k=' in out, out
    p = run([tokenclean, 'select', '--config', str(tiny_config), '--method', 'fixd'], check=False)
    assert p.returncode == 2 and "invalid choice: 'fixd'" in p.stderr

THREADS = "import sys, torch; from tokenclean.cli import main; main(sys.argv[1:]); print('threads', torch.get_num_threads())"

def test_threads_default_to_torch_unless_told(tmp_path):
    "No pin by default: torch's own choice; `OMP_NUM_THREADS` or `--threads` decide otherwise."
    import os, sys
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
    torch_default = subprocess.run([sys.executable, '-c', 'import torch; print(torch.get_num_threads())'], env=env,
                                   capture_output=True, text=True, check=True).stdout.strip()
    threads = lambda args, **e: subprocess.run([sys.executable, '-c', THREADS, 'config', *args], env={**env, **e},
                                               capture_output=True, text=True, check=True).stdout.split()[-1]
    assert threads([]) == torch_default
    assert threads([], OMP_NUM_THREADS='1') == '1'
    assert threads(['--threads', '1']) == '1'

CRASH = "import sys, tokenclean.cli as c; c.cmd_config = lambda a: {}['missing']; c.main(sys.argv[1:])"

def test_unexpected_error_is_short_with_a_debug_hint():
    import sys
    p = run([sys.executable, '-c', CRASH, 'config'], check=False)
    assert p.returncode == 1 and 'Traceback' not in p.stderr
    assert p.stderr.splitlines()[0] == "tokenclean config: unexpected KeyError: 'missing'"
    assert 'rerun with --debug' in p.stderr
    p = run([sys.executable, '-c', CRASH, 'config', '--debug'], check=False)
    assert p.returncode == 1 and 'Traceback' in p.stderr and "KeyError: 'missing'" in p.stderr

def test_bad_yaml_config_is_one_line(tokenclean, tmp_path):
    bad = tmp_path/'bad.yaml'; bad.write_text('k: 0.5\n  pool: x\n')
    p = run([tokenclean, 'config', '--config', str(bad)], check=False)
    assert p.returncode == 2 and 'Traceback' not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert f'config {bad}: not valid YAML at line 2' in p.stderr

# --- stopped before any model loads (preflight), and IO errors as one line naming the path -------------------------

def _one_line_error(p, *parts):
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in p.stderr, p.stderr
    for s in parts: assert s in lines[0], (s, lines[0])
    return lines[0]

@pytest.mark.parametrize('sets,parts', [
    (['eval_tasks=[hellaswg]'], ["'hellaswg' is not an offline task", "(did you mean 'hellaswag'?)"]),
    (['k=.nan'], ["config key 'k': must be a finite number"]),
    (['train.lr=.inf'], ["config key 'train.lr': must be a finite number"]),
    (['lora_targets=[no_such_module]'], ["has no module 'no_such_module'"]),
    (['seeds=[1, 1]'], ["'seeds': must be a list without repeats (1 twice)"]),
    (['warmup=missing-warmup.jsonl'], ["config key 'warmup': the warm-up set 'missing-warmup.jsonl' is not a file"]),
])
def test_study_stops_before_any_model_loads(tokenclean, tiny_config, tmp_path, sets, parts):
    "Each slip stops `tokenclean study` at once with one line (no run folder is made for a config error)."
    import time
    t = time.time()
    p = run([tokenclean, 'study', '--config', str(tiny_config)] + [a for s in sets for a in ('--set', s)], check=False)
    _one_line_error(p, *parts)
    assert time.time() - t < 120 and not (tmp_path/'runs').exists()

def _mount(folder, opts):
    "Mount a small tmpfs on `folder` (root only); False if this machine does not allow it."
    folder.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(['mount', '-t', 'tmpfs', '-o', opts, 'tmpfs', str(folder)], capture_output=True)
    return p.returncode == 0

@pytest.mark.parametrize('kind', ['file in the way', 'read-only', 'disk full'])
def test_unwritable_out_is_one_line_naming_it(tokenclean, tiny_config, tmp_path, kind):
    import os
    out, mounted = tmp_path/'target', False
    if kind == 'file in the way':
        out.write_text('x')
        out, want = out/'runs', f'{out} is a file, not a folder'
    elif kind == 'read-only':
        mounted = _mount(out, 'ro,size=1m')
        if not mounted:
            if os.geteuid() == 0: pytest.skip('root writes into read-only folders and cannot mount here')
            out.chmod(0o555)
        want = 'read-only file system' if mounted else 'permission denied'
    else:
        mounted = _mount(out, 'size=256k')
        if not mounted: pytest.skip('needs a small file system (tmpfs mount, as root)')
        want = 'no space left on the device'
    try:
        p = run([tokenclean, 'study', '--config', str(tiny_config), '--set', f'out={out}'], check=False)
        _one_line_error(p, f"out '{out}': cannot write there ({want})")
    finally:
        if mounted: subprocess.run(['umount', str(out)])
