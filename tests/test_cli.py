"End-to-end tests of the installed `tokenclean` command."
import json
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
    run([tokenclean, 'export', '--config', str(tiny_config), '--method', 'fixed', '--out', str(out)])
    import datasets
    ds = datasets.load_from_disk(str(out))
    assert set(ds.column_names) >= {'input_ids', 'attention_mask', 'labels'}
    kept = sum(sum(l != -100 for l in row) for row in ds['labels'])
    total = sum(len(row) for row in ds['input_ids'])
    assert 0 < kept < total
