#!/usr/bin/env python
"""What merging a LoRA adapter into its base's weights keeps of the adapter's change, in fp32 and in bf16.

    .venv/bin/python scripts/merge_precision.py --adapter runs/real_text/.../reference-s42-0d53f074/adapter \
        [--model smollm2-135m-instruct] [--json nbs/assets/performance/merge_precision.json]

For every adapted weight W (fp32) with change D = (alpha/r)·B·A, it rounds W and W + D to the precision and compares:
the share of weights whose merged value equals the unmerged one (the change rounded away), and the relative error of
the change the merged weights carry, ||round(W + D) − round(W) − D|| / ||D||, over all adapted layers. `merged_adapter`
(nbs/api/01_models.ipynb) merges fp32 weights only because of what this measures.
"""
import argparse, json
from pathlib import Path
import torch
from safetensors.torch import load_file

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--adapter', required=True); ap.add_argument('--model', default='smollm2-135m-instruct')
    ap.add_argument('--json', default=None)
    a = ap.parse_args()
    from tokenclean.models import load_model
    cfg = json.loads((Path(a.adapter)/'adapter_config.json').read_text())
    s, ad = cfg['lora_alpha'] / cfg['r'], load_file(Path(a.adapter)/'adapter_model.safetensors')
    sd = load_model(a.model, device='cpu').state_dict()
    res = dict(adapter=str(a.adapter), model=a.model, scale=s, weights=0)
    acc = {p: dict(same=0, err=0.0) for p in ('float32', 'bfloat16')}
    norm = 0.0
    for k in (k for k in ad if 'lora_A' in k):
        W = sd[k.replace('base_model.model.', '').replace('.lora_A', '')].float()
        D = s * (ad[k.replace('lora_A', 'lora_B')].float() @ ad[k].float())
        res['weights'] += W.numel(); norm += float((D**2).sum())
        for p, v in acc.items():
            w, m = W.to(getattr(torch, p)), (W + D).to(getattr(torch, p))
            v['same'] += int((m == w).sum()); v['err'] += float(((m.float() - w.float() - D)**2).sum())
    res.update({p: dict(share_unchanged=v['same'] / res['weights'], relative_error=(v['err'] / norm)**0.5)
                for p, v in acc.items()}, change_rms=(norm / res['weights'])**0.5)
    print(json.dumps(res, indent=1))
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1) + '\n')

if __name__ == '__main__': main()
