"""`scripts/gpu_check.sh --dry`: every check of the GPU check runs on the CPU at tiny sizes and writes its report."""
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).parent.parent

def test_gpu_check_dry(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1',
               TOKENIZERS_PARALLELISM='false', PY=sys.executable)
    p = subprocess.run(['bash', str(ROOT/'scripts'/'gpu_check.sh'), '--dry', '--out', str(tmp_path), '--gpu', 'H100'],
                       capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    report = json.loads((tmp_path/'gpu_check.json').read_text())
    checks = report['checks']
    assert list(checks) == ['env', 'bf16', 'fp16', 'qlora', 'scoring', 'memory', 'lm_eval', 'study', 'time_plan']
    assert report['ok'] and p.returncode == 0, {k: v.get('error') for k, v in checks.items() if not v['ok']}
    assert checks['bf16']['falls'] and checks['fp16']['loss_scale'] == 2.**16        # fp16 runs with the scaler
    assert checks['scoring']['tokens_per_s'] > 0 and checks['scoring']['mfu'] is None   # MFU only on a GPU
    assert checks['memory']['est_gb'] > 0 and 0 <= checks['lm_eval']['arc_challenge_offline']['acc,none'] <= 1
    hours = checks['time_plan']['models']['llama-3.1-8b']['total_hours']
    assert 0.5 < hours < 10 and 'time plan on H100: llama-3.1-8b' in p.stdout
    assert 'gemm_4bit' not in p.stdout + p.stderr                       # bitsandbytes kept quiet
