#!/usr/bin/python3
"""Writes a checkpoint in the layout of the released MAE pretraining weights
(mae_pretrain_vit_base.pth: {'model': encoder state dict}, official names and shapes), from the
official architecture (tests/make_fixtures.py: models_mae.py with timm's Block) at ViT-B/16,
224x224, randomly initialized as models_mae.py does. The released files cannot be downloaded
here; this one has their tensors, names and shapes.
    /usr/bin/python3 tests/tools/official_checkpoint.py OUT.pth [--with-decoder]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from make_fixtures import MaskedAutoencoderViT  # noqa: E402

torch.manual_seed(0)
model = MaskedAutoencoderViT(224, 16, 3, 768, 12, 12, 512, 8, 16)  # mae_vit_base_patch16_dec512d8b
state = model.state_dict()
if "--with-decoder" not in sys.argv:  # the released pretrain checkpoints hold the encoder only
    state = {k: v for k, v in state.items() if not (k.startswith("decoder") or k == "mask_token")}
torch.save({"model": state}, sys.argv[1])
print(f"{sys.argv[1]}: {len(state)} tensors, {sum(v.numel() for v in state.values()) / 1e6:.2f}M values")
