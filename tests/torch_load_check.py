#!/usr/bin/python3
"""Loads a checkpoint written by the C++ library into the official-semantics PyTorch model
(tests/make_fixtures.py), strictly, and checks that it computes the same loss.
usage: torch_load_check.py CKPT IO img patch chans D depth heads D' ddepth dheads ratio norm_pix"""
import sys

import torch

from make_fixtures import MaskedAutoencoderViT, load_safetensors

ckpt, io = sys.argv[1], sys.argv[2]
img, p, ch, D, depth, h, Dd, ddepth, dh = map(int, sys.argv[3:12])
ratio, norm_pix = float(sys.argv[12]), sys.argv[13] == "1"
model = MaskedAutoencoderViT(img, p, ch, D, depth, h, Dd, ddepth, dh, 4., norm_pix)
state, _ = load_safetensors(ckpt)
model.load_state_dict(state, strict=True)
t, _ = load_safetensors(io)
with torch.no_grad():
    loss, _, _ = model(t["imgs"], ratio, t["noise"])
ours = t["loss"].item()
print(f"torch_load_check: PyTorch loss {loss.item():.7f}, C++ loss {ours:.7f}")
sys.exit(0 if abs(loss.item() - ours) <= 1e-5 + 1e-4 * abs(ours) else 1)
