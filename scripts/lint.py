"""Lint the generated library: no unused imports (F401) and no line over 120 characters (E501), with ruff; and two
rules of its architecture: the library never imports a study, and per-token losses are computed in one place.

Usage: .venv/bin/python scripts/lint.py [paths]   (default: tokenclean; CI: tokenclean nbs; settings in ruff.toml)
One kind of line is let through: the first line of `__all__`, which nbdev writes itself (it wraps the list
at 120 columns, then prefixes `__all__ = `); the notebooks cannot fold it.
Architecture (`architecture`): a module of tokenclean/ outside tokenclean/studies/ neither imports tokenclean.studies
nor names it in a string (importlib); only tokenclean/scoring.py calls cross_entropy, log_softmax or logsumexp.
"""
import ast, json, subprocess, sys
from pathlib import Path

def _nbdev_all(f:dict)->bool:
    "Is finding `f` an over-long first line of nbdev's `__all__`?"
    line = Path(f['filename']).read_text(encoding='utf-8').splitlines()[f['location']['row'] - 1]
    return f['code'] == 'E501' and line.startswith('__all__ = [')

def lint(paths:list)->list:
    "Ruff's findings on `paths`, without nbdev's `__all__` lines."
    r = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--output-format', 'json', *paths],
                       capture_output=True, text=True)
    if r.returncode not in (0, 1): sys.exit(f'ruff failed:\n{r.stderr}')
    return [f for f in json.loads(r.stdout) if not _nbdev_all(f)]

LOSS_CALLS = {'cross_entropy', 'log_softmax', 'logsumexp', 'nll_loss', 'CrossEntropyLoss'}
LOSS_HOME = 'scoring.py'   # the one per-token loss loop (`token_nll`)

def _finding(path:Path, node, code:str, msg:str)->dict:
    return dict(filename=str(path.resolve()), location=dict(row=getattr(node, 'lineno', 1)), code=code, message=msg)

def _studies_refs(tree)->list:
    "Nodes of `tree` that import tokenclean.studies or name it in a string."
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and ((n.module or '').startswith(('tokenclean.studies', 'studies'))
                                              or any(a.name == 'studies' for a in n.names)): out.append(n)
        elif isinstance(n, ast.Import) and any(a.name.startswith('tokenclean.studies') for a in n.names): out.append(n)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and 'tokenclean.studies' in n.value: out.append(n)
    return out

def _loss_calls(tree)->list:
    "Calls in `tree` of a per-token loss function."
    name = lambda f: f.attr if isinstance(f, ast.Attribute) else getattr(f, 'id', None)
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and name(n.func) in LOSS_CALLS]

def architecture(lib:Path)->list:
    "Findings of the two architecture rules in the library folder `lib`."
    out = []
    for p in sorted(lib.rglob('*.py')):
        if p.name == '_modidx.py': continue
        tree, rel = ast.parse(p.read_text(encoding='utf-8')), p.relative_to(lib)
        if rel.parts[0] != 'studies':
            out += [_finding(p, n, 'ARC1', 'the library imports (or names) a study: tokenclean.studies')
                    for n in _studies_refs(tree)]
        if rel.as_posix() != LOSS_HOME:
            out += [_finding(p, n, 'ARC2', f'a per-token loss computed outside {LOSS_HOME}: use scoring.token_nll')
                    for n in _loss_calls(tree)]
    return out

if __name__ == '__main__':
    paths = sys.argv[1:] or ['tokenclean']
    found = lint(paths) + [f for p in paths if Path(p).is_dir() and Path(p).name == 'tokenclean'
                           for f in architecture(Path(p))]
    for f in found:
        print(f"{Path(f['filename']).relative_to(Path.cwd())}:{f['location']['row']}: {f['code']} {f['message']}")
    by_file = sorted({Path(f['filename']).name for f in found})
    print(f"{len(found)} problems in {len(by_file)} files{': ' + ', '.join(by_file) if by_file else ''}")
    sys.exit(1 if found else 0)
