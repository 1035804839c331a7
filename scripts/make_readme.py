"""Write README.md from nbs/index.ipynb (the home page is the README's source).

nbdev_readme needs Quarto; this is the same conversion done in plain Python: markdown cells as they
are, code cells as ```python blocks without their `#|` directives, outputs left out.
Usage: python scripts/make_readme.py [--check]
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def readme_text(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    cells = json.loads(Path(nb_path).read_text(encoding='utf-8'))['cells']
    parts = []
    for c in cells:
        src = ''.join(c['source']).strip('\n')
        if c['cell_type'] == 'markdown': parts.append(src)
        elif c['cell_type'] == 'code':
            code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith('#|')).strip('\n')
            if code: parts.append(f'```python\n{code}\n```')
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = readme_text(), ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit('README.md differs from nbs/index.ipynb: run python scripts/make_readme.py')
        print('README.md matches nbs/index.ipynb')
    else:
        readme.write_text(text, encoding='utf-8'); print(f'wrote {readme}')
