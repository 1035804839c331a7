"""`scripts/run.sh` pins one thread and offline mode for the default job and the tests only, never for a user's study
(run against a stand-in venv whose `python` and `tokenclean` print what they were given)."""
import hashlib, os, shutil, stat, subprocess
from pathlib import Path
from conftest import ROOT

FAKE = '#!/usr/bin/env bash\necho "$(basename "$0") $* | OMP=${OMP_NUM_THREADS:-unset} OFFLINE=${HF_HUB_OFFLINE:-unset}"\n'

def _tree(tmp_path)->Path:
    "A copy of the files run.sh reads, with a stand-in .venv that counts as installed."
    root = tmp_path/'repo'
    (root/'scripts').mkdir(parents=True)
    for f in ('settings.ini', 'setup.py', 'scripts/run.sh'): shutil.copy(ROOT/f, root/f)
    venv = root/'.venv'/'bin'
    venv.mkdir(parents=True)
    for name in ('python', 'tokenclean'):
        (venv/name).write_text(FAKE if name == 'tokenclean' else '#!/usr/bin/env bash\n')   # python: `import torch` ok
        (venv/name).chmod(stat.S_IRWXU)
    want = hashlib.sha256(b''.join((root/f).read_bytes() for f in ('settings.ini', 'setup.py', 'scripts/run.sh')))
    (root/'.venv'/'.tokenclean-installed').write_text(want.hexdigest()[:16] + '\n')
    return root

def _run(root, *args):
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'HF_HUB_OFFLINE',
                                                              'HF_DATASETS_OFFLINE')}
    p = subprocess.run(['bash', str(root/'scripts'/'run.sh'), *args], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout

def test_default_job_is_pinned_a_users_study_is_not(tmp_path):
    root = _tree(tmp_path)
    assert _run(root, 'study').strip() == 'tokenclean demo runs | OMP=1 OFFLINE=1'
    assert _run(root, 'study', '--config', 'paper-llama-3.2-3b').strip() == \
        'tokenclean study --config paper-llama-3.2-3b | OMP=unset OFFLINE=unset'
