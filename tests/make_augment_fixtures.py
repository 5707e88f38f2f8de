#!/usr/bin/python3
"""Write tests/fixtures/augment_timm.safetensors: the fine-tuning augmentations as timm and PIL
compute them, for tests/test_augment.cpp (and the soft-target cross-entropy of test_layers.cpp, clip_grad_norm of test_optim.cpp).

Runs timm's own functions (timm/data/auto_augment.py and timm/data/mixup.py, imported from a
checkout of timm given as the argument) with Debian's python3-pil, python3-torch and
python3-numpy; nothing of timm is installed or copied:
    apt-get install -y python3-pil python3-torch python3-numpy
    /usr/bin/python3 tests/make_augment_fixtures.py /path/to/pytorch-image-models
The randomness of timm (Python's random, numpy's) cannot be reproduced in C++, so the draws are
fixed here (the sign coin of _randomly_negate, the mixup lam and the cutmix box centre are
patched) and the fixture records what timm computes from them:
  ra.<op>.<image>.<k>     RandAugment operation op with argument args[k] on an image (uint8 as I64)
  level.<op>              level_to_arg of the magnitudes in `levels`, not negated and negated
  mix.*                   Mixup._mix_batch (mixup and cutmix) and mixup_target
  softce.*, clip.*        SoftTargetCrossEntropy (value, gradient) and clip_grad_norm_
"""
import importlib.util
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from mae_safetensors import save_safetensors  # noqa: E402


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


timm_dir = sys.argv[1]
aa = load_module(os.path.join(timm_dir, "timm/data/auto_augment.py"), "timm_auto_augment")
mixup = load_module(os.path.join(timm_dir, "timm/data/mixup.py"), "timm_mixup")

rng = np.random.RandomState(20261206)
out = {}


def tensor(a, dtype=torch.int64):
    return torch.tensor(np.ascontiguousarray(a), dtype=dtype)


# ---------------------------------------------------------------- images (C, H, W) uint8
def make_images():
    H, W = 20, 23  # not square: catches a swapped width and height
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = rng.randint(0, 256, size=(3, H, W)).astype(np.uint8)
    rgb[0, :, :8] = (xx[:, :8] * 9 + yy[:, :8] * 3).astype(np.uint8)  # smooth parts for the filters
    rgb[1, 5:15, 5:15] = 200
    low = (60 + rng.randint(0, 90, size=(1, 17, 17))).astype(np.uint8)  # low contrast: autocontrast stretches
    gray = rng.randint(0, 256, size=(1, 17, 17)).astype(np.uint8)
    gray[0, 3:9, 2:12] = 37
    return {"rgb": rgb, "gray": gray, "lowgray": low}


def to_pil(a):
    return Image.fromarray(a[0], "L") if a.shape[0] == 1 else Image.fromarray(np.transpose(a, (1, 2, 0)), "RGB")


def from_pil(img):
    a = np.asarray(img)
    return a[None] if a.ndim == 2 else np.transpose(a, (2, 0, 1))


images = make_images()
for name, a in images.items():
    out["image." + name] = tensor(a)
fills = {"rgb": (124, 116, 104), "gray": (73,), "lowgray": (73,)}
for name, f in fills.items():
    out["fill." + name] = tensor(np.array(f))

# The operations of rand-m9-mstd0.5-inc1 (_RAND_INCREASING_TRANSFORMS) with the arguments their
# level functions produce (and the edges: 0, the maximum, factors above 1 that clip).
OPS = {
    "AutoContrast": [None], "Equalize": [None], "Invert": [None],
    "Rotate": [13.7, -13.7, 30.0, -30.0, 0.5, 27.0],
    "Posterize": [0, 1, 2, 3, 4, 8],
    "Solarize": [0, 25, 128, 200, 256],
    "SolarizeAdd": [0, 55, 99, 110],
    "Color": [0.1, 0.55, 1.0, 1.45, 1.9],
    "Contrast": [0.1, 0.55, 1.0, 1.45, 1.9],
    "Brightness": [0.1, 0.55, 1.0, 1.45, 1.9],
    "Sharpness": [0.1, 0.55, 1.0, 1.45, 1.9],
    "ShearX": [0.3, -0.3, 0.17, -0.05],
    "ShearY": [0.3, -0.3, 0.17, -0.05],
    "TranslateXRel": [0.45, -0.45, 0.2, -0.111],
    "TranslateYRel": [0.45, -0.45, 0.2, -0.111],
}
for op, args in OPS.items():
    out["args." + op] = tensor(np.array([0.0 if a is None else a for a in args]), torch.float64)
    for name, a in images.items():
        for k, arg in enumerate(args):
            kwargs = dict(fillcolor=fills[name] if len(fills[name]) > 1 else fills[name][0], resample=Image.BICUBIC)
            img = to_pil(a)
            res = aa.NAME_TO_OP[op](img, **kwargs) if arg is None else aa.NAME_TO_OP[op](img, arg, **kwargs)
            out[f"ra.{op}.{name}.{k}"] = tensor(from_pil(res))

# The histogram operations on a larger picture (Equalize's step is (pixels - last bin) // 256:
# on the small images above it is 0 or 1, which would hide an off-by-one in it).
big = np.clip(rng.normal(110, 40, size=(3, 48, 64)), 0, 255).astype(np.uint8)
big[2] = (big[2] // 3 + 40).astype(np.uint8)
out["image.big"] = tensor(big)
out["fill.big"] = tensor(np.array(fills["rgb"]))
for op in ("AutoContrast", "Equalize"):
    out[f"ra.{op}.big.0"] = tensor(from_pil(aa.NAME_TO_OP[op](to_pil(big))))

# level_to_arg (the Increasing variants of the rand-...-inc1 policy) for these magnitudes.
levels = [0.0, 1.0, 2.5, 4.99, 8.3, 9.0, 9.37, 10.0]
out["levels"] = tensor(np.array(levels), torch.float64)
LEVEL_OPS = {"Rotate": "Rotate", "Posterize": "PosterizeIncreasing", "Solarize": "SolarizeIncreasing",
             "SolarizeAdd": "SolarizeAdd", "Color": "ColorIncreasing", "Contrast": "ContrastIncreasing",
             "Brightness": "BrightnessIncreasing", "Sharpness": "SharpnessIncreasing", "ShearX": "ShearX",
             "ShearY": "ShearY", "TranslateXRel": "TranslateXRel", "TranslateYRel": "TranslateYRel"}
hparams = dict(translate_pct=0.45)
saved_random = aa.random.random
for op, timm_name in LEVEL_OPS.items():
    rows = []
    for coin in (0.2, 0.7):  # _randomly_negate: -v if random.random() > 0.5
        aa.random.random = lambda c=coin: c
        rows.append([aa.LEVEL_TO_ARG[timm_name](m, hparams)[0] for m in levels])
    out["level." + op] = tensor(np.array(rows, dtype=np.float64), torch.float64)
aa.random.random = saved_random
# and the non-increasing enhance / posterize / solarize levels
for timm_name in ("Color", "Posterize", "Solarize"):
    out["level_plain." + timm_name] = tensor(
        np.array([aa.LEVEL_TO_ARG[timm_name](m, hparams)[0] for m in levels], dtype=np.float64), torch.float64)

# ---------------------------------------------------------------- Mixup (mode "batch")
N, C, H, W, K = 6, 3, 9, 11, 10
x = torch.tensor(rng.standard_normal((N, C, H, W)).astype(np.float32))
labels = torch.tensor([3, 0, 9, 3, 7, 1])
out["mix.x"] = x.clone()
out["mix.labels"] = labels.clone()
cases = [("mixup", 0.3141, False, (0, 0)), ("cutmix", 0.6, True, (4, 2)), ("cutmix_edge", 0.35, True, (8, 10)),
         ("cutmix_corner", 0.8, True, (0, 0))]
for name, lam, cut, (cy, cx) in cases:
    m = mixup.Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=K)
    m._params_per_batch = lambda lam=lam, cut=cut: (lam, cut)
    draws = iter([cy, cx])
    saved = mixup.np.random.randint
    mixup.np.random.randint = lambda *a, **k: next(draws)
    xm = x.clone()
    lam_out = m._mix_batch(xm)
    mixup.np.random.randint = saved
    out[f"mix.{name}.x"] = xm
    out[f"mix.{name}.params"] = torch.tensor([lam, float(cut), cy, cx, lam_out], dtype=torch.float64)
    out[f"mix.{name}.target"] = mixup.mixup_target(labels, K, lam_out, 0.1)

# ---------------------------------------------------------------- SoftTargetCrossEntropy, clip_grad_norm_
z = torch.tensor(rng.standard_normal((5, 7)) * 3, dtype=torch.float64, requires_grad=True)
t = torch.tensor(rng.dirichlet(np.ones(7), size=5), dtype=torch.float64)
t[1] *= 0.9  # a row that does not sum to 1 (the formula takes it as given)
loss = torch.sum(-t * torch.nn.functional.log_softmax(z, dim=-1), dim=-1).mean()
loss.backward()
out["softce.logits"] = z.detach().clone()
out["softce.targets"] = t
out["softce.loss"] = loss.detach().reshape(1)
out["softce.grad"] = z.grad.clone()

# "tiny": a norm near 1e-3, where the 1e-6 of max_norm / (norm + 1e-6) shows at 1e-3 relative
for name, max_norm, scale in (("clipped", 1.0, 1.0), ("unclipped", 100.0, 1.0), ("tiny", 1e-4, 3e-4)):
    grads = [torch.tensor(rng.standard_normal(s).astype(np.float32) * scale) for s in ((4, 3), (7,), (2, 2, 2))]
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    out[f"clip.{name}.grad"] = torch.cat([g.reshape(-1) for g in grads])
    out[f"clip.{name}.clipped"] = torch.cat([p.grad.reshape(-1) for p in params])
    out[f"clip.{name}.norm"] = torch.tensor([float(norm), max_norm], dtype=torch.float64)

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "augment_timm.safetensors")
save_safetensors(path, out, {"writer": "tests/make_augment_fixtures.py", "pil": Image.__version__,
                             "torch": torch.__version__, "ops": " ".join(OPS), "images": " ".join(images),
                             "big_ops": "AutoContrast Equalize",
                             "mix_cases": " ".join(c[0] for c in cases), "clip_cases": "clipped unclipped tiny",
                             "level_ops": " ".join(LEVEL_OPS)})
print("wrote", path, len(out), "tensors")
