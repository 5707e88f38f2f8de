#!/usr/bin/python3
"""Times one MAE training step (forward + backward + AdamW) of the official-semantics PyTorch
model (tests/make_fixtures.py) and prints one JSON line: ms per step (best of the repeats),
images/s, peak resident memory, torch's thread count and CPU capability.

usage: pytorch_step.py CONFIG BATCH [--torch-threads N] [--seconds S] [--bf16]
--bf16: the forward under torch.autocast("cpu", dtype=torch.bfloat16) (mixed precision, fp32
weights and optimizer), the backward and AdamW as always
CONFIG: tiny_28x28_gray | tiny_32x32_rgb | tiny_patch16_224 | vit_base_patch16_dec512d8b"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from make_fixtures import MaskedAutoencoderViT, param_groups_weight_decay  # noqa: E402

CONFIGS = {  # img, patch, chans, D, depth, heads, D', ddepth, dheads (as mae::presets)
    "tiny_28x28_gray": (28, 4, 1, 192, 6, 3, 128, 2, 4),
    "tiny_32x32_rgb": (32, 4, 3, 192, 12, 3, 128, 4, 4),
    "tiny_patch16_224": (224, 16, 3, 192, 12, 3, 128, 4, 4),
    "vit_base_patch16_dec512d8b": (224, 16, 3, 768, 12, 12, 512, 8, 16),
}

ap = argparse.ArgumentParser()
ap.add_argument("config", choices=CONFIGS)
ap.add_argument("batch", type=int)
ap.add_argument("--torch-threads", type=int, default=0, help="0: leave torch's default")
ap.add_argument("--seconds", type=float, default=8.0)
ap.add_argument("--bf16", action="store_true", help="CPU autocast in bfloat16")
a = ap.parse_args()
if a.torch_threads > 0:
    torch.set_num_threads(a.torch_threads)
torch.manual_seed(0)
img, p, ch, D, depth, h, Dd, ddepth, dh = CONFIGS[a.config]
model = MaskedAutoencoderViT(img, p, ch, D, depth, h, Dd, ddepth, dh, 4., False)
opt = torch.optim.AdamW(param_groups_weight_decay(model, 0.05), lr=1e-4, betas=(0.9, 0.95))
imgs = torch.randn(a.batch, ch, img, img)
L = (img // p) ** 2


def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        loss, _, _ = model(imgs, 0.75, torch.rand(a.batch, L))
    loss.float().backward()
    opt.step()
    opt.zero_grad()


for _ in range(2):
    step()
times, start = [], time.perf_counter()
while time.perf_counter() - start < a.seconds or len(times) < 3:
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
times.sort()
ms = 1000 * times[len(times) // 2]  # median
cap = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else os.environ.get("ATEN_CPU_CAPABILITY", "default")
print(json.dumps({"ms": ms, "images_per_s": a.batch * 1000 / ms, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "torch_threads": torch.get_num_threads(), "steps": len(times), "capability": cap,
                  "bf16_autocast": a.bf16}))
