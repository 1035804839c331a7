"The paper configs are the paper: `tokenclean config --config paper-llama-3.1-8b` against method.md, field by field."
import inspect, re
from pathlib import Path
import pytest, yaml
from conftest import ROOT, run

METHOD_MD = ROOT.parent/'shared'/'reference'/'method.md'   # the project's notes on the paper (absent in CI)
PROJ = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']

# method.md, transcribed: "Training settings of the paper", "Selection", "Self-evolving cleaning", "Data"
PAPER_TABLE = {
    'model': 'meta-llama/Llama-3.1-8B', 'pool': 'jlpang888/DS2_50k', 'template': 'tulu', 'max_len': 2048, 'k': 0.6,
    'methods': ['full', 'random', 'rho', 'fixed', 'self_evolving'], 'rounds': 4, 'first_reference': 'chunk0',
    'seeds': [41, 42, 43], 'lora_r': 64, 'lora_alpha': 16, 'lora_dropout': 0.1, 'lora_targets': PROJ, 'precision': 'bf16',
    'quant': 'auto', 'train.lr': 1e-4, 'train.epochs': 1, 'train.batch_size': 48, 'train.warmup_ratio': 0.03,
    'train.weight_decay': 0.0, 'train.max_grad_norm': None, 'train.shuffle': False,
    'eval_tasks': ['truthfulqa', 'tydiqa', 'logiqa', 'mmlu', 'hellaswag', 'arc_challenge', 'boolq'],
}

def _get(cfg:dict, key:str):
    for part in key.split('.'): cfg = cfg[part]
    return cfg

@pytest.fixture(scope='module')
def printed():
    exe = Path(__import__('sys').executable).parent/'tokenclean'
    return yaml.safe_load(run([str(exe), 'config', '--config', 'paper-llama-3.1-8b']).stdout)

@pytest.mark.parametrize('key', list(PAPER_TABLE))
def test_printed_config_matches_the_paper(printed, key):
    assert _get(printed, key) == PAPER_TABLE[key], key

def test_table_is_method_md():
    "Each number of the transcription is the one in method.md (where the notes are at hand)."
    if not METHOD_MD.exists(): pytest.skip('method.md is not beside this checkout')
    t = ' '.join(METHOD_MD.read_text().split())
    s = re.search(r'## Training settings of the paper (.*?)## Data', t).group(1)
    grab = lambda pat: re.search(pat, s).group(1)
    assert int(grab(r'LoRA r=(\d+)')) == PAPER_TABLE['lora_r'] and int(grab(r'α=(\d+)')) == PAPER_TABLE['lora_alpha']
    assert float(grab(r'dropout ([\d.]+)')) == PAPER_TABLE['lora_dropout']
    assert float(grab(r'lr ([\d.e-]+)')) == PAPER_TABLE['train.lr']
    assert float(grab(r'(\d+)% warm-up')) / 100 == PAPER_TABLE['train.warmup_ratio']
    assert grab(r'(\d+|one) epoch') in ('1', 'one') and PAPER_TABLE['train.epochs'] == 1
    assert int(grab(r'effective batch (\d+)')) == PAPER_TABLE['train.batch_size']
    assert int(grab(r'max length (\d+)')) == PAPER_TABLE['max_len']
    assert 'weight decay 0' in s and PAPER_TABLE['train.weight_decay'] == 0
    assert 'no gradient clipping' in s and PAPER_TABLE['train.max_grad_norm'] is None
    assert 'no data shuffling' in s and PAPER_TABLE['train.shuffle'] is False
    assert 'bf16' in s and PAPER_TABLE['precision'] == 'bf16'
    assert [int(x) for x in re.search(r'seeds (\d+), (\d+), (\d+)', s).groups()] == PAPER_TABLE['seeds']
    assert re.search(r'targets q,k,v,o,gate,up,down', s) and PAPER_TABLE['lora_targets'] == PROJ
    assert 'T+1 = 5' in t and PAPER_TABLE['rounds'] + 1 == 5
    assert 'Default k = 0.6' in t and 'jlpang888/DS2_50k' in t and 'Tulu' in t

def test_fixed_in_code_as_in_the_paper():
    "AdamW and the linear schedule are not settings: the training loop has them."
    from tokenclean.training import train
    src = inspect.getsource(train)
    assert 'torch.optim.AdamW' in src and 'get_linear_schedule_with_warmup' in src

def test_auto_keeps_the_paper_where_it_fits():
    "On an 80 GB GPU `auto` is the paper (bf16 LoRA, no 4-bit); on 16 GB it changes the least and says so."
    from transformers import LlamaConfig
    from tokenclean.config import load_config, plan_study
    llama8b = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                          num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False)
    cfg = lambda gb: load_config('paper-llama-3.1-8b', device='cpu', gpu_gb=gb)
    p80, p16 = plan_study(cfg(80), llama8b), plan_study(cfg(16), llama8b)
    assert (p80['quant'], p80['precision'], p80['micro_batch'] * p80['grad_accum']) == (None, 'bf16', 48)
    assert not any('departs' in c for c in p80['changes'])
    assert p16['quant'] == '4bit' and any('departs from the paper: 4-bit' in c for c in p16['changes'])
