"""Run notebooks top to bottom and save them with their outputs (for the docs site).

Usage: .venv/bin/python scripts/execute_notebooks.py [--slow] nbs/NAME.ipynb ...
Cells flagged `#| eval: false` or `#| gpu` are skipped (and `#| slow` ones unless --slow), exactly
as nbdev_test does. Run `nbdev_clean` afterwards.
"""
import os, re, sys, time
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

def _flags(src):
    return {m.group(1).strip() for m in re.finditer(r'^#\|\s*(.+)$', src, re.M)}

def run(path, slow=False):
    path = Path(path).resolve(); nb = read_nb(path)
    skip = {'eval: false', 'gpu'} | (set() if slow else {'slow'})
    def preproc(cell):
        if cell.cell_type != 'code': return True
        if 'nbdev_export' + '(' in cell.source: return True
        return bool(_flags(cell.source) & skip)
    os.environ.setdefault('OMP_NUM_THREADS', '1'); os.environ['IN_TEST'] = '1'
    cwd = os.getcwd(); os.chdir(path.parent); t = time.time()
    try:
        sh = CaptureShell(path); sh.run_all(nb, exc_stop=True, preproc=preproc)
    finally: os.chdir(cwd)
    write_nb(nb, path); print(f'{path.name}: {time.time() - t:.0f} s')

if __name__ == '__main__':
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    for p in args: run(p, slow='--slow' in sys.argv)
