#!/usr/bin/python3
"""Write tests/fixtures/timm/: models and outputs of timm's own VisionTransformer, for
tests/test_interchange.cpp (import of timm's files, export to timm's names, hidden states and
attention probabilities).

Runs timm's code (timm/models/vision_transformer.py, imported from a checkout of the public
huggingface/pytorch-image-models repository given as the argument) on Debian's python3-torch
1.13 and python3-torchvision; nothing of timm is installed or copied:
    apt-get install -y python3-torch python3-torchvision python3-numpy python3-yaml
    /usr/bin/python3 tests/make_timm_fixtures.py /path/to/pytorch-image-models
timm's folder is config.json + model.safetensors. config.json is written by timm's own
save_config_for_hf; model.safetensors holds timm's own state_dict() (written by
scripts/mae_safetensors.py, since Debian has no python safetensors; the names, shapes and
values are timm's). Each model is checked to load its file back strictly before it is kept.

  encoder/   VisionTransformer(num_classes=0, global_pool='token'): an MAE encoder as timm's
             `vit_base_patch16_224.mae` holds it, here 16x16 RGB, patch 4, D 12, 2 blocks, 3 heads
  avg/       VisionTransformer(num_classes=5, global_pool='avg'): fc_norm + head, the layout of
             an MAE fine-tuned with global pooling
  outputs.safetensors:
    images                 (N, 3, 16, 16) inputs
    encoder.features       (N, D) forward_head(forward_features(x), pre_logits=True): norm(x)[:, 0]
    encoder.tokens         (N, 1+L, D) forward_features(x): every token after the final norm
    encoder.hidden.b       (N, 1+L, D) the output of block b (0: the embedded tokens), b = 0..depth
    encoder.attention.b    (N, H, 1+L, 1+L) block b's attention probabilities (softmax), b = 1..depth
    encoder.rollout        (N, L) the attention rollout (Abnar & Zuidema) of those probabilities:
                           the cls row of A_depth ... A_1, A_b = rownormalize((mean_h + I) / 2)
    avg.features, avg.logits   (N, D), (N, 5) of the avg model
Every weight is perturbed from timm's initialization (zero biases, unit LayerNorm weights) so
that each tensor changes the outputs.
"""
import os
import pathlib
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from mae_safetensors import save_safetensors  # noqa: E402

sys.path.insert(0, sys.argv[1])
import timm  # noqa: E402
from timm.models._hub import save_config_for_hf  # noqa: E402

torch.manual_seed(20261207)
out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "timm")
SIZES = dict(img_size=16, patch_size=4, in_chans=3, embed_dim=12, depth=2, num_heads=3, mlp_ratio=4.0)


def make(num_classes, global_pool):
    m = timm.models.vision_transformer.VisionTransformer(num_classes=num_classes, global_pool=global_pool, **SIZES)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    m.eval()
    for b in m.blocks:
        assert b.norm1.eps == 1e-6 and not b.attn.fused_attn  # MAE's eps; torch 1.13: the unfused path
    return m


def save_folder(m, name, model_args):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    state = m.state_dict()
    save_safetensors(os.path.join(d, "model.safetensors"), state)
    m.pretrained_cfg = dict(architecture="vit_base_patch16_224", input_size=(3, 16, 16), mean=(0.5, 0.5, 0.5),
                            std=(0.25, 0.25, 0.25), num_classes=model_args["num_classes"])
    save_config_for_hf(m, pathlib.Path(d) / "config.json", model_args=model_args)
    # timm's strict load of its own file: every name present, none extra
    fresh = make(model_args["num_classes"], model_args["global_pool"])
    fresh.load_state_dict(state, strict=True)


encoder = make(0, "token")
avg = make(5, "avg")
args = dict(SIZES)
save_folder(encoder, "encoder", dict(args, num_classes=0, global_pool="token"))
save_folder(avg, "avg", dict(args, num_classes=5, global_pool="avg"))

N = 3
images = torch.randn(N, 3, 16, 16)
outputs = {"images": images}
hidden, attention = {}, {}
hooks = [encoder.pos_drop.register_forward_hook(lambda mod, i, o: hidden.__setitem__(0, o.clone()))]
for b, blk in enumerate(encoder.blocks):
    hooks.append(blk.register_forward_hook(lambda mod, i, o, b=b: hidden.__setitem__(b + 1, o.clone())))
    # timm's unfused attention applies attn_drop to the probabilities: its input is softmax(q k^T)
    hooks.append(blk.attn.attn_drop.register_forward_hook(lambda mod, i, o, b=b: attention.__setitem__(b + 1, o.clone())))
with torch.no_grad():
    tokens = encoder.forward_features(images)
    outputs["encoder.features"] = encoder.forward_head(tokens, pre_logits=True)
    outputs["encoder.tokens"] = tokens
    for b, h in hidden.items():
        outputs[f"encoder.hidden.{b}"] = h
    for b, a in attention.items():
        outputs[f"encoder.attention.{b}"] = a
    R = torch.eye(17, dtype=torch.float64).expand(N, 17, 17)
    for b in sorted(attention):
        A = 0.5 * attention[b].double().mean(1) + 0.5 * torch.eye(17, dtype=torch.float64)
        A = A / A.sum(-1, keepdim=True)
        R = A @ R
    outputs["encoder.rollout"] = R[:, 0, 1:].float()
    x = avg.forward_features(images)
    outputs["avg.features"] = avg.forward_head(x, pre_logits=True)
    outputs["avg.logits"] = avg.forward_head(x)
assert len(hidden) == 3 and len(attention) == 2
assert torch.allclose(outputs["encoder.attention.1"].sum(-1), torch.ones(N, 3, 17))
save_safetensors(os.path.join(out_dir, "outputs.safetensors"), outputs,
                 {"written_by": f"timm {timm.__version__} VisionTransformer, torch {torch.__version__}"})
print("wrote", out_dir)
