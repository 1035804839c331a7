"The architecture rules of scripts/lint.py find what they forbid, and nothing in the library breaks them."
import importlib.util, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('lint', ROOT/'scripts'/'lint.py')
lint = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lint)

def _lib(tmp_path, files:dict)->Path:
    lib = tmp_path/'tokenclean'
    for name, src in files.items():
        (lib/name).parent.mkdir(parents=True, exist_ok=True)
        (lib/name).write_text(src)
    return lib

def test_architecture_finds_violations(tmp_path):
    lib = _lib(tmp_path, {
        'cli.py': 'from tokenclean.studies.controlled import write_data\nimport importlib\n'
                  "m = importlib.import_module('tokenclean.studies.default_job')\n",
        'stages.py': 'from .studies import controlled\n',
        'report.py': 'import torch\nnll = torch.nn.functional.cross_entropy(z, y)\nlp = z.log_softmax(-1)\n',
        'scoring.py': 'import torch\nnll = torch.logsumexp(z, -1)\n',          # the one place allowed
        'studies/controlled.py': 'from tokenclean.studies.ground_truth import rates\n',   # studies may import studies
    })
    found = {(Path(f['filename']).name, f['code'], f['location']['row']) for f in lint.architecture(lib)}
    assert found == {('cli.py', 'ARC1', 1), ('cli.py', 'ARC1', 3), ('stages.py', 'ARC1', 1),
                     ('report.py', 'ARC2', 2), ('report.py', 'ARC2', 3)}

def test_library_follows_architecture():
    found = lint.architecture(ROOT/'tokenclean')
    assert found == [], found
