"""Count, per notebook, the code cells that carry saved outputs (the docs site shows only those), and the stderr
blocks: in the notebooks' saved outputs, or on a built site (`cell-output-stderr` blocks per page).

Usage: .venv/bin/python scripts/count_outputs.py [nbs]            per notebook: code cells, with outputs, stderr
       .venv/bin/python scripts/count_outputs.py --site _site     per page: stderr blocks, and the total
"""
import json, re, sys
from pathlib import Path

def counts(root='nbs'):
    "(notebook, code cells, code cells with outputs, stderr outputs) for every notebook under `root`."
    out = []
    for p in sorted(Path(root).rglob('*.ipynb')):
        if '.ipynb_checkpoints' in p.parts: continue
        cells = [c for c in json.loads(p.read_text(encoding='utf-8'))['cells'] if c['cell_type'] == 'code']
        err = sum(o.get('name') == 'stderr' for c in cells for o in c.get('outputs', []))
        out.append((p.relative_to(root).as_posix(), len(cells), sum(bool(c.get('outputs')) for c in cells), err))
    return out

STDERR = re.compile(r'class="[^"]*cell-output-stderr')

def site_counts(site='_site'):
    "(page, stderr blocks) for every HTML page of a built site."
    return [(p.relative_to(site).as_posix(), len(STDERR.findall(p.read_text(encoding='utf-8', errors='replace'))))
            for p in sorted(Path(site).rglob('*.html')) if 'site_libs' not in p.parts]

if __name__ == '__main__':
    args = sys.argv[1:]
    if args[:1] == ['--site']:
        rows = site_counts(args[1] if len(args) > 1 else '_site')
        w = max(len(r[0]) for r in rows)
        print(f"{'page':<{w}}  stderr blocks")
        for name, n in rows: print(f'{name:<{w}}  {n:>13}')
        print(f"{len(rows)} pages; {sum(n for _, n in rows)} stderr blocks on {sum(n > 0 for _, n in rows)} pages")
    else:
        rows = counts(args[0] if args else 'nbs')
        w = max(len(r[0]) for r in rows)
        print(f"{'notebook':<{w}}  code cells  with outputs  stderr outputs")
        for name, n, k, e in rows: print(f'{name:<{w}}  {n:>10}  {k:>12}  {e:>14}')
        print(f"{sum(r[3] for r in rows)} stderr outputs in {sum(r[3] > 0 for r in rows)} of {len(rows)} notebooks")
