#!/usr/bin/python3
"""timm's own code against mae's program, both ways, on a published architecture
(vit_tiny_patch16_224, the preset of the same name):

  1. timm's create_model('vit_tiny_patch16_224', num_classes=0) writes a folder as timm publishes
     one (config.json by timm's save_config_for_hf, model.safetensors of its state_dict);
  2. `mae pretrain --init` and `mae finetune --init` start from that folder;
  3. `mae export --format timm` of the fine-tuned classifier is loaded by timm's
     VisionTransformer(global_pool='avg') with load_state_dict(strict=True), and timm's
     pre-logits features of a few pictures are compared with `mae extract` of the same
     pictures (224x224 PNGs, --crop-pct 1: no resize, no crop; the export's normalization).

A check for a person (it needs a timm checkout and Debian's python3-torch, python3-torchvision,
python3-pil), not part of the test suite; tests/test_interchange.cpp holds the fixtures.
    /usr/bin/python3 dev/check_with_timm.py /path/to/pytorch-image-models build/release/tools/mae /tmp/timm_check
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "scripts"))
from mae_safetensors import load_safetensors, save_safetensors  # noqa: E402

timm_dir, mae, work = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
sys.path.insert(0, timm_dir)
import timm  # noqa: E402
from timm.models._hub import save_config_for_hf  # noqa: E402

shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
os.chdir(work)
torch.manual_seed(0)
rng = np.random.RandomState(0)


def run(*args):
    print("$ mae", " ".join(args), flush=True)
    subprocess.run([mae, *args], check=True, stdout=subprocess.DEVNULL)


# 1. timm's published layout
m = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
with torch.no_grad():
    for p in m.parameters():
        p.add_(0.02 * torch.randn_like(p))
os.makedirs("timm_tiny")
save_safetensors("timm_tiny/model.safetensors", m.state_dict())
save_config_for_hf(m, pathlib.Path("timm_tiny/config.json"))
print("timm_tiny/config.json:", json.load(open("timm_tiny/config.json")))

# pictures: two classes of 224x224 RGB
for split, n in (("train", 12), ("val", 4)):
    for c in ("a", "b"):
        os.makedirs(f"pics/{split}/{c}")
        for i in range(n):
            base = rng.randint(0, 256, size=(28, 28, 3)).astype(np.uint8)
            Image.fromarray(base).resize((224, 224), Image.BICUBIC).save(f"pics/{split}/{c}/{i:03d}.png")

# 2. mae starts from it
run("pretrain", "--data", "pics", "--init", "timm_tiny", "--max-steps", "1", "--batch", "8", "--out", "pre")
run("finetune", "--data", "pics", "--init", "timm_tiny", "--max-steps", "2", "--batch", "8", "--out", "ft")

# 3. mae's export, loaded strictly by timm, gives mae's features
run("export", "--checkpoint", "ft/classifier.safetensors", "--format", "timm", "--out", "exp")
config = json.load(open("exp/config.json"))
state, _ = load_safetensors("exp/model.safetensors")
t = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=config["num_classes"],
                      global_pool=config["global_pool"])
t.load_state_dict(state, strict=True)  # every name present, none extra
t.eval()
run("extract", "--data", "pics", "--split", "val", "--checkpoint", "exp", "--crop-pct", "1", "--out", "feat.safetensors")
feats, meta = load_safetensors("feat.safetensors")
files = json.loads(meta["mae.files"])
mean = torch.tensor(config["pretrained_cfg"]["mean"]).view(3, 1, 1)
std = torch.tensor(config["pretrained_cfg"]["std"]).view(3, 1, 1)
x = torch.stack([(torch.from_numpy(np.asarray(Image.open(f).convert("RGB"),
                                             dtype=np.float32) / 255).permute(2, 0, 1) - mean) / std
                 for f in files])
with torch.no_grad():
    theirs = t.forward_head(t.forward_features(x), pre_logits=True)
ours = feats["features"]
rel = ((ours - theirs).norm() / theirs.norm()).item()
print(f"timm strict load of mae's export: ok; features of {len(files)} pictures, |mae - timm| / |timm| = {rel:.2e}")
sys.exit(0 if rel < 1e-5 else 1)
