"README.md is generated from nbs/index.ipynb; they must agree, and the README gives the two commands."
import subprocess, sys
from conftest import ROOT

def test_readme_matches_index():
    p = subprocess.run([sys.executable, str(ROOT/'scripts'/'make_readme.py'), '--check'], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr + p.stdout

def test_ci_runs_the_readme_test_command():
    readme, ci = (ROOT/'README.md').read_text(), (ROOT/'.ci'/'run').read_text()
    assert 'bash scripts/run.sh test' in readme and 'bash scripts/run.sh study' in readme
    assert 'bash scripts/run.sh test' in ci
