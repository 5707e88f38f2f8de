#!/usr/bin/python3
"""Convert an official MAE PyTorch checkpoint (.pth) to safetensors, and back.

Needs Debian's python3-torch and python3-numpy (apt-get install -y python3-torch python3-numpy).

  /usr/bin/python3 scripts/convert_checkpoint.py to-safetensors mae_pretrain.pth mae.safetensors
  /usr/bin/python3 scripts/convert_checkpoint.py to-pth mae.safetensors mae.pth

to-safetensors takes the checkpoint's 'model' entry when there is one (as main_pretrain.py
saves it: {'model', 'optimizer', 'epoch', ...}), else the file as a state dict, and writes
every tensor under its state-dict name and shape (patch_embed.proj.weight stays (D, C, p, p)),
in float32. to-pth writes {'model': state_dict}, which models_mae.py loads with
model.load_state_dict(ckpt['model']). Note: the released mae_pretrain_vit_*.pth files hold
the encoder only; the C++ MAE model needs the decoder too and will say which tensor is missing.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mae_safetensors import load_safetensors, save_safetensors  # noqa: E402


def to_safetensors(src, dst):
    ckpt = torch.load(src, map_location="cpu")
    state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    if not isinstance(state, dict):
        sys.exit(f"{src}: not a state dict nor a checkpoint with a 'model' entry")
    tensors = {}
    for name, t in state.items():
        if not torch.is_tensor(t):
            continue
        tensors[name] = t.float() if t.is_floating_point() else t.long()
    save_safetensors(dst, tensors, {"format": "pt", "source": os.path.basename(src)})
    print(f"{dst}: {len(tensors)} tensors")


def to_pth(src, dst):
    state, meta = load_safetensors(src)
    tmp = dst + ".tmp"
    torch.save({"model": state, "metadata": meta}, tmp)
    os.replace(tmp, dst)
    print(f"{dst}: {len(state)} tensors")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("direction", choices=["to-safetensors", "to-pth"])
    ap.add_argument("src")
    ap.add_argument("dst")
    a = ap.parse_args()
    (to_safetensors if a.direction == "to-safetensors" else to_pth)(a.src, a.dst)
