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

def _python_example()->str:
    "The README's 'In Python' code block."
    text = (ROOT/'README.md').read_text()
    return text.split('## In Python', 1)[1].split('```python\n', 1)[1].split('```', 1)[0]

def test_python_example_measures_something(tmp_path):
    "The example uses the CPU settings and measures every method on held-out samples (run here at tiny size)."
    code = _python_example()
    assert "load_config('cpu'," in code and 'heldout=0' not in code and 'eval_tasks=[]' not in code
    tiny = ("load_config('cpu', model='tiny-random', pool_limit=32, heldout=8, warmup_limit=8, max_len=96, "
            "eval_tasks=['boolq_offline'], eval_limit=4,")
    check = ("t = results_table(results)\n"
             "loss = t[('held-out loss', 'mean')].drop('reference', errors='ignore')\n"
             "assert len(loss) == 2 and (loss > 0).all(), t\n"
             "assert any(c[0] != 'held-out loss' for c in t.columns), t.columns\n"
             "print('ok', dict(loss))\n")
    script = tmp_path/'example.py'
    script.write_text(code.replace("load_config('cpu',", tiny).replace("out='runs'", f"out={str(tmp_path/'runs')!r}")
                      + '\n' + check)
    from conftest import ENV
    import os
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, **ENV), timeout=900)
    assert p.returncode == 0 and 'ok' in p.stdout, p.stderr[-3000:]
