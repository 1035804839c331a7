"""Count, per notebook, the code cells that carry saved outputs (the docs site shows only those).

Usage: .venv/bin/python scripts/count_outputs.py [nbs]
"""
import json, sys
from pathlib import Path

def counts(root='nbs'):
    "(notebook, code cells, code cells with outputs) for every notebook under `root`."
    out = []
    for p in sorted(Path(root).rglob('*.ipynb')):
        if '.ipynb_checkpoints' in p.parts: continue
        cells = [c for c in json.loads(p.read_text(encoding='utf-8'))['cells'] if c['cell_type'] == 'code']
        out.append((p.relative_to(root).as_posix(), len(cells), sum(bool(c.get('outputs')) for c in cells)))
    return out

if __name__ == '__main__':
    rows = counts(sys.argv[1] if len(sys.argv) > 1 else 'nbs')
    w = max(len(r[0]) for r in rows)
    print(f"{'notebook':<{w}}  code cells  with outputs")
    for name, n, k in rows: print(f'{name:<{w}}  {n:>10}  {k:>12}')
