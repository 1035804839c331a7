"""Lint the generated library: no unused imports (F401) and no line over 120 characters (E501), with ruff.

Usage: .venv/bin/python scripts/lint.py [paths]   (default: tokenclean; settings in ruff.toml)
One kind of line is let through: the first line of `__all__`, which nbdev writes itself (it wraps the list
at 120 columns, then prefixes `__all__ = `); the notebooks cannot fold it.
"""
import json, subprocess, sys
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

if __name__ == '__main__':
    found = lint(sys.argv[1:] or ['tokenclean'])
    for f in found:
        print(f"{Path(f['filename']).relative_to(Path.cwd())}:{f['location']['row']}: {f['code']} {f['message']}")
    by_file = sorted({Path(f['filename']).name for f in found})
    print(f"{len(found)} problems in {len(by_file)} files{': ' + ', '.join(by_file) if by_file else ''}")
    sys.exit(1 if found else 0)
