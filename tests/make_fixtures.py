#!/usr/bin/python3
"""Write the PyTorch reference fixtures for the parity tests (tests/fixtures/*.safetensors).

The model below is the official MAE (facebookresearch/mae models_mae.py) with the timm 0.3.2
Block written out, so that nothing but Debian's python3-torch and python3-numpy is needed:
    apt-get install -y python3-torch python3-numpy
    /usr/bin/python3 tests/make_fixtures.py            # rewrites tests/fixtures/
Each fixture holds the weights (official state-dict names), the input images and masking
noise, the outputs (loss, pred, mask), and the gradient of the loss for every trainable
parameter ("grad.<name>"). Its metadata names the configuration.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from mae_safetensors import load_safetensors, save_safetensors  # noqa: E402

torch.set_num_threads(1)


# ---------------------------------------------------------------- util/pos_embed.py
def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.
    omega = 1. / 10000 ** omega
    pos = pos.reshape(-1)
    out = np.einsum('m,d->md', pos, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def get_2d_sincos_pos_embed(embed_dim, grid_size, cls_token=False):
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # here w goes first
    grid = np.stack(grid, axis=0).reshape([2, 1, grid_size, grid_size])
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])
    pos_embed = np.concatenate([emb_h, emb_w], axis=1)
    if cls_token:
        pos_embed = np.concatenate([np.zeros([1, embed_dim]), pos_embed], axis=0)
    return pos_embed


# ---------------------------------------------------------------- timm 0.3.2 Block
class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class PatchEmbed(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


# ---------------------------------------------------------------- models_mae.py
class MaskedAutoencoderViT(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim, depth, num_heads, decoder_embed_dim,
                 decoder_depth, decoder_num_heads, mlp_ratio=4., norm_pix_loss=False):
        super().__init__()
        self.patch_size, self.in_chans = patch_size, in_chans
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        L = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, L + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, L + 1, decoder_embed_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(decoder_embed_dim, decoder_num_heads, mlp_ratio)
                                             for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans, bias=True)
        self.norm_pix_loss = norm_pix_loss
        self.initialize_weights()

    def initialize_weights(self):
        G = int(self.patch_embed.num_patches ** .5)
        self.pos_embed.data.copy_(torch.from_numpy(
            get_2d_sincos_pos_embed(self.pos_embed.shape[-1], G, cls_token=True)).float().unsqueeze(0))
        self.decoder_pos_embed.data.copy_(torch.from_numpy(
            get_2d_sincos_pos_embed(self.decoder_pos_embed.shape[-1], G, cls_token=True)).float().unsqueeze(0))
        w = self.patch_embed.proj.weight.data
        torch.nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        torch.nn.init.normal_(self.cls_token, std=.02)
        torch.nn.init.normal_(self.mask_token, std=.02)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def patchify(self, imgs):
        p, c = self.patch_size, self.in_chans
        h = w = imgs.shape[2] // p
        x = imgs.reshape(shape=(imgs.shape[0], c, h, p, w, p))
        x = torch.einsum('nchpwq->nhwpqc', x)
        return x.reshape(shape=(imgs.shape[0], h * w, p ** 2 * c))

    def random_masking(self, x, mask_ratio, noise):
        N, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
        mask = torch.ones([N, L], device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        return x_masked, mask, ids_restore

    def forward_encoder(self, x, mask_ratio, noise):
        x = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:, :]
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)
        mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)
        return x[:, 1:, :]

    def forward_loss(self, imgs, pred, mask):
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.e-6) ** .5
        loss = (pred - target) ** 2
        loss = loss.mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs, mask_ratio=0.75, noise=None):
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask


# name, (img, patch, chans, D, depth, heads, D', ddepth, dheads), batch, mask ratio, norm_pix, seed
FIXTURES = [
    ("tiny_gray", (8, 2, 1, 16, 2, 2, 16, 1, 2), 3, 0.75, False, 1),
    ("small_rgb_normpix", (12, 4, 3, 24, 2, 3, 16, 2, 2), 2, 0.6, True, 2),
    ("gray28_normpix", (28, 7, 1, 32, 2, 4, 16, 1, 2), 2, 0.75, True, 3),
    ("rgb16_ratio50", (16, 4, 3, 64, 2, 4, 32, 1, 2), 4, 0.5, False, 4),
]


def config_name(c, mlp_ratio=4):
    img, p, ch, D, depth, h, Dd, ddepth, dh = c
    return f"img{img}_patch{p}_chans{ch}_enc{D}d{depth}h{h}_dec{Dd}d{ddepth}h{dh}_mlp{mlp_ratio}"


def seeded_model(cfg, norm_pix, seed):
    """The model after torch.manual_seed(seed) (its initialization draws first), and its L."""
    torch.manual_seed(seed)
    img, p, ch, D, depth, h, Dd, ddepth, dh = cfg
    return MaskedAutoencoderViT(img, p, ch, D, depth, h, Dd, ddepth, dh, 4., norm_pix), (img // p) ** 2


def seeded_step_inputs(cfg, norm_pix, seed, batch):
    """seeded_model, then the images and the masking noise of one step, drawn in that order."""
    model, L = seeded_model(cfg, norm_pix, seed)
    img, ch = cfg[0], cfg[2]
    return model, torch.randn(batch, ch, img, img), torch.rand(batch, L)


def make(name, cfg, batch, mask_ratio, norm_pix, seed, outdir):
    model, imgs, noise = seeded_step_inputs(cfg, norm_pix, seed, batch)
    loss, pred, mask = model(imgs, mask_ratio, noise)
    loss.backward()
    tensors = dict(model.state_dict())
    tensors["input.imgs"] = imgs
    tensors["input.noise"] = noise
    tensors["output.loss"] = loss.detach().reshape(1)
    tensors["output.pred"] = pred
    tensors["output.mask"] = mask
    for n, prm in model.named_parameters():
        if prm.requires_grad:
            tensors["grad." + n] = prm.grad
    meta = {"mae.config": config_name(cfg), "mask_ratio": repr(mask_ratio), "norm_pix_loss": "1" if norm_pix else "0",
            "torch": torch.__version__}
    save_safetensors(os.path.join(outdir, name + ".safetensors"), tensors, meta)
    print(f"{name}: loss {loss.item():.6f}, {sum(t.numel() for t in tensors.values())} values")


def make_autocast(name, cfg, batch, mask_ratio, norm_pix, seed, outdir):
    """The same step in fp32 and under torch.autocast("cpu", dtype=torch.bfloat16): loss, pred
    and every gradient of both (the fp32 ones as "fp32.*"), for the bf16 parity test."""
    model, imgs, noise = seeded_step_inputs(cfg, norm_pix, seed, batch)
    tensors = dict(model.state_dict())
    tensors["input.imgs"] = imgs
    tensors["input.noise"] = noise
    for prefix, autocast in (("fp32.", False), ("", True)):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss, pred, mask = model(imgs, mask_ratio, noise)
        loss.float().backward()
        tensors[prefix + "output.loss"] = loss.detach().float().reshape(1)
        tensors[prefix + "output.pred"] = pred.detach().float()
        tensors[prefix + "output.mask"] = mask.float()
        for n, prm in model.named_parameters():
            if prm.requires_grad:
                tensors[prefix + "grad." + n] = prm.grad.clone()
        print(f"{name}: {'autocast bf16' if autocast else 'fp32'} loss {loss.item():.6f} (pred {pred.dtype})")
    meta = {"mae.config": config_name(cfg), "mask_ratio": repr(mask_ratio), "norm_pix_loss": "1" if norm_pix else "0",
            "torch": torch.__version__, "autocast": "cpu bfloat16"}
    save_safetensors(os.path.join(outdir, name + ".safetensors"), tensors, meta)


# ---------------------------------------------------------------- util/lr_sched.py
def adjust_learning_rate(optimizer, epoch, lr, min_lr, warmup_epochs, epochs):
    import math
    if epoch < warmup_epochs:
        lr = lr * epoch / warmup_epochs
    else:
        lr = min_lr + (lr - min_lr) * 0.5 * (1. + math.cos(math.pi * (epoch - warmup_epochs) / (epochs - warmup_epochs)))
    for param_group in optimizer.param_groups:
        param_group["lr"] = lr
    return lr


def param_groups_weight_decay(model, weight_decay):
    """timm's optim_factory.add_weight_decay, as main_pretrain.py uses it."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if len(param.shape) == 1 or name.endswith(".bias"):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{'params': no_decay, 'weight_decay': 0.}, {'params': decay, 'weight_decay': weight_decay}]


def make_adamw(name, cfg, batch, mask_ratio, norm_pix, seed, outdir, iters_per_epoch=5, epochs=2, accum=2,
               lr=2e-3, min_lr=1e-4, warmup_epochs=1, weight_decay=0.05):
    """engine_pretrain.py's loop: lr set at the start of each accumulation window, loss / accum,
    AdamW(betas=(0.9, 0.95)) step every accum micro-batches (a window may span epochs)."""
    model, L = seeded_model(cfg, norm_pix, seed)
    img, ch = cfg[0], cfg[2]
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(param_groups_weight_decay(model, weight_decay), lr=lr, betas=(0.9, 0.95))
    losses, lrs = [], []
    for epoch in range(epochs):
        for it in range(iters_per_epoch):
            k = epoch * iters_per_epoch + it
            if it % accum == 0:
                adjust_learning_rate(opt, it / iters_per_epoch + epoch, lr, min_lr, warmup_epochs, epochs)
            imgs = torch.randn(batch, ch, img, img)
            noise = torch.rand(batch, L)
            tensors[f"input.imgs.{k}"] = imgs
            tensors[f"input.noise.{k}"] = noise
            loss, _, _ = model(imgs, mask_ratio, noise)
            losses.append(loss.item())
            lrs.append(opt.param_groups[0]["lr"])
            (loss / accum).backward()
            if (it + 1) % accum == 0:
                opt.step()
                opt.zero_grad()
    tensors["output.losses"] = torch.tensor(losses, dtype=torch.float64)
    tensors["output.lrs"] = torch.tensor(lrs, dtype=torch.float64)
    for n, prm in model.named_parameters():
        tensors["final." + n] = prm.detach().clone()
        st = opt.state[prm]
        if st:
            tensors["final.exp_avg." + n] = st["exp_avg"]
            tensors["final.exp_avg_sq." + n] = st["exp_avg_sq"]
    meta = {"mae.config": config_name(cfg), "mask_ratio": repr(mask_ratio), "norm_pix_loss": "1" if norm_pix else "0",
            "iters_per_epoch": str(iters_per_epoch), "epochs": str(epochs), "accum_iter": str(accum), "lr": repr(lr),
            "min_lr": repr(min_lr), "warmup_epochs": repr(warmup_epochs), "weight_decay": repr(weight_decay),
            "torch": torch.__version__}
    save_safetensors(os.path.join(outdir, name + ".safetensors"), tensors, meta)
    print(f"{name}: losses {[round(x, 4) for x in losses]}")


# ---------------------------------------------------------------- models_vit.py + timm 0.3.2
class DropPath(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0. or not self.training:
            return x
        keep = 1 - self.p
        r = (keep + torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype)).floor_()
        return x.div(keep) * r


class VitBlock(Block):
    def __init__(self, dim, num_heads, mlp_ratio, drop_path):
        super().__init__(dim, num_heads, mlp_ratio)
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class VisionTransformer(nn.Module):
    """models_vit.VisionTransformer (timm's, with global_pool + fc_norm)."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim, depth, num_heads, num_classes, global_pool,
                 drop_path_rate=0., mlp_ratio=4.):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        L = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, L + 1, embed_dim))
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]
        self.blocks = nn.ModuleList([VitBlock(embed_dim, num_heads, mlp_ratio, dpr[i]) for i in range(depth)])
        self.global_pool = global_pool
        if global_pool:
            self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        else:
            self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x):
        B = x.shape[0]
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        if self.global_pool:
            x = self.fc_norm(x[:, 1:, :].mean(dim=1))
        else:
            x = self.norm(x)[:, 0]
        return self.head(x)


def label_smoothing_ce(x, target, smoothing):
    """timm's LabelSmoothingCrossEntropy."""
    logprobs = torch.nn.functional.log_softmax(x, dim=-1)
    nll = -logprobs.gather(dim=-1, index=target.unsqueeze(1)).squeeze(1)
    smooth = -logprobs.mean(dim=-1)
    return ((1. - smoothing) * nll + smoothing * smooth).mean()


def get_layer_id_for_vit(name, num_layers):
    if name in ['cls_token', 'pos_embed']:
        return 0
    elif name.startswith('patch_embed'):
        return 0
    elif name.startswith('blocks'):
        return int(name.split('.')[1]) + 1
    return num_layers


def param_groups_lrd(model, weight_decay, no_weight_decay_list, layer_decay):
    """util/lr_decay.py"""
    groups = {}
    num_layers = len(model.blocks) + 1
    layer_scales = [layer_decay ** (num_layers - i) for i in range(num_layers + 1)]
    for n, p in model.named_parameters():
        if p.ndim == 1 or n in no_weight_decay_list:
            g_decay, this_decay = "no_decay", 0.
        else:
            g_decay, this_decay = "decay", weight_decay
        layer_id = get_layer_id_for_vit(n, num_layers)
        name = "layer_%d_%s" % (layer_id, g_decay)
        if name not in groups:
            groups[name] = {"lr_scale": layer_scales[layer_id], "weight_decay": this_decay, "params": []}
        groups[name]["params"].append(p)
    return list(groups.values())


def make_classifier(name, cfg, classes, global_pool, smoothing, batch, seed, outdir, steps=3, lr=1e-3, min_lr=1e-5,
                    warmup_epochs=1, epochs=2, layer_decay=0.75, weight_decay=0.05):
    """One forward/backward (logits, loss, every gradient), then main_finetune.py's optimizer:
    AdamW (default betas) over param_groups_lrd, lr = schedule * lr_scale per group, for
    `steps` steps of an epoch of `steps` iterations. Drop path 0 (its draws are RNG-specific)."""
    torch.manual_seed(seed)
    img, p, ch, D, depth, h = cfg
    model = VisionTransformer(img, p, ch, D, depth, h, classes, global_pool)
    with torch.no_grad():  # every parameter away from its special init value
        for prm in model.parameters():
            prm.add_(0.2 * torch.randn_like(prm))
    tensors = {"init." + k: v.clone() for k, v in model.state_dict().items()}
    imgs = torch.randn(batch, ch, img, img)
    labels = torch.randint(0, classes, (batch,))
    logits = model(imgs)
    loss = label_smoothing_ce(logits, labels, smoothing)
    loss.backward()
    tensors["input.imgs"] = imgs
    tensors["input.labels"] = labels.to(torch.float64)
    tensors["output.logits"] = logits.detach()
    tensors["output.loss"] = loss.detach().reshape(1)
    for n, prm in model.named_parameters():
        tensors["grad." + n] = prm.grad.clone()
    model.zero_grad()
    opt = torch.optim.AdamW(param_groups_lrd(model, weight_decay, ["pos_embed", "cls_token"], layer_decay), lr=lr)
    losses = []
    for it in range(steps):
        base = adjust_learning_rate(opt, it / steps, lr, min_lr, warmup_epochs, epochs)
        for g in opt.param_groups:
            g["lr"] = base * g["lr_scale"]
        x = torch.randn(batch, ch, img, img)
        y = torch.randint(0, classes, (batch,))
        tensors[f"step.imgs.{it}"] = x
        tensors[f"step.labels.{it}"] = y.to(torch.float64)
        opt.zero_grad()
        step_loss = label_smoothing_ce(model(x), y, smoothing)
        losses.append(step_loss.item())
        step_loss.backward()
        opt.step()
    tensors["output.step_losses"] = torch.tensor(losses, dtype=torch.float64)
    for n, prm in model.named_parameters():
        tensors["final." + n] = prm.detach().clone()
    meta = {"mae.config": config_name(cfg + (D, 1, h)), "classes": str(classes), "global_pool": "1" if global_pool else "0",
            "smoothing": repr(smoothing), "steps": str(steps), "lr": repr(lr), "min_lr": repr(min_lr),
            "warmup_epochs": repr(warmup_epochs), "epochs": repr(epochs), "layer_decay": repr(layer_decay),
            "weight_decay": repr(weight_decay), "torch": torch.__version__}
    save_safetensors(os.path.join(outdir, name + ".safetensors"), tensors, meta)
    print(f"{name}: loss {loss.item():.6f}, step losses {[round(x, 4) for x in losses]}")


class LARS(torch.optim.Optimizer):
    """util/lars.py"""

    def __init__(self, params, lr=0, weight_decay=0, momentum=0.9, trust_coefficient=0.001):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, trust_coefficient=trust_coefficient)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g['params']:
                dp = p.grad
                if dp is None:
                    continue
                if p.ndim > 1:
                    dp = dp.add(p, alpha=g['weight_decay'])
                    param_norm = torch.norm(p)
                    update_norm = torch.norm(dp)
                    one = torch.ones_like(param_norm)
                    q = torch.where(param_norm > 0.,
                                    torch.where(update_norm > 0, (g['trust_coefficient'] * param_norm / update_norm), one),
                                    one)
                    dp = dp.mul(q)
                param_state = self.state[p]
                if 'mu' not in param_state:
                    param_state['mu'] = torch.zeros_like(p)
                mu = param_state['mu']
                mu.mul_(g['momentum']).add_(dp)
                p.add_(mu, alpha=-g['lr'])


def make_linear_probe(name, features, classes, batch, steps, seed, outdir, lr=2.0, weight_decay=0.0):
    """main_linprobe.py's head: BatchNorm1d(affine=False, eps=1e-6) + Linear, LARS, CrossEntropyLoss."""
    torch.manual_seed(seed)
    head = nn.Sequential(nn.BatchNorm1d(features, affine=False, eps=1e-6), nn.Linear(features, classes))
    with torch.no_grad():
        head[1].weight.normal_(0, 0.01)
        head[1].bias.zero_()
    tensors = {"init.head.1.weight": head[1].weight.detach().clone(), "init.head.1.bias": head[1].bias.detach().clone()}
    opt = LARS(head.parameters(), lr=lr, weight_decay=weight_decay)
    crit = nn.CrossEntropyLoss()
    losses = []
    for it in range(steps):
        x = 3 + 2 * torch.randn(batch, features)
        y = torch.randint(0, classes, (batch,))
        tensors[f"step.x.{it}"] = x
        tensors[f"step.labels.{it}"] = y.to(torch.float64)
        opt.zero_grad()
        loss = crit(head(x), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    head.eval()
    xe = torch.randn(batch, features)
    tensors["eval.x"] = xe
    tensors["eval.logits"] = head(xe).detach()
    tensors["output.step_losses"] = torch.tensor(losses, dtype=torch.float64)
    tensors["final.head.0.running_mean"] = head[0].running_mean.clone()
    tensors["final.head.0.running_var"] = head[0].running_var.clone()
    tensors["final.head.1.weight"] = head[1].weight.detach().clone()
    tensors["final.head.1.bias"] = head[1].bias.detach().clone()
    meta = {"lr": repr(lr), "weight_decay": repr(weight_decay), "steps": str(steps), "torch": torch.__version__}
    save_safetensors(os.path.join(outdir, name + ".safetensors"), tensors, meta)
    print(f"{name}: step losses {[round(x, 4) for x in losses]}")


def interpolate_pos_embed(pos_embed_checkpoint, new_size, num_extra_tokens=1):
    """util/pos_embed.py interpolate_pos_embed, on the tensor instead of the state dicts."""
    embedding_size = pos_embed_checkpoint.shape[-1]
    orig_size = int((pos_embed_checkpoint.shape[-2] - num_extra_tokens) ** 0.5)
    extra_tokens = pos_embed_checkpoint[:, :num_extra_tokens]
    pos_tokens = pos_embed_checkpoint[:, num_extra_tokens:]
    pos_tokens = pos_tokens.reshape(-1, orig_size, orig_size, embedding_size).permute(0, 3, 1, 2)
    pos_tokens = torch.nn.functional.interpolate(
        pos_tokens, size=(new_size, new_size), mode='bicubic', align_corners=False)
    pos_tokens = pos_tokens.permute(0, 2, 3, 1).flatten(1, 2)
    return torch.cat((extra_tokens, pos_tokens), dim=1)


def make_interpolate_pos_embed(outdir, seed=16):
    """Fine-tuning at another resolution: pos_embed (1, 1 + G0*G0, D) -> (1, 1 + G1*G1, D).
    The tables are the official sincos ones plus noise (so every row differs), float32; the
    results in float64 and, as in a float32 checkpoint, in float32."""
    torch.manual_seed(seed)
    tensors, cases = {}, [(4, 6, 8), (7, 3, 8), (14, 8, 16), (14, 16, 16), (14, 24, 12), (5, 5, 4)]
    for g0, g1, d in cases:
        src = torch.from_numpy(get_2d_sincos_pos_embed(d, g0, cls_token=True)).float().unsqueeze(0)
        src = src + 0.1 * torch.randn_like(src)
        tensors[f"src.{g0}.{g1}.{d}"] = src
        tensors[f"dst.{g0}.{g1}.{d}"] = interpolate_pos_embed(src.double(), g1)  # float64: the exact result
        tensors[f"dst_float32.{g0}.{g1}.{d}"] = interpolate_pos_embed(src, g1)  # float32: rounded at every step
    meta = {"cases": " ".join(f"{a},{b},{c}" for a, b, c in cases), "torch": torch.__version__}
    save_safetensors(os.path.join(outdir, "interpolate_pos_embed.safetensors"), tensors, meta)
    print(f"interpolate_pos_embed: {len(cases)} cases")


if __name__ == "__main__":
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
    os.makedirs(outdir, exist_ok=True)
    for f in FIXTURES:
        make(*f, outdir)
    # AdamW + schedule + accumulation: 2 epochs of 5 micro-batches, a step every 2 (one window
    # spans the epoch boundary), warmup 1 epoch then cosine.
    # bf16 mixed precision: the rgb16 step under CPU autocast, beside the same step in fp32.
    make_autocast("rgb16_autocast_bf16", (16, 4, 3, 64, 2, 4, 32, 1, 2), 4, 0.5, False, 4, outdir)
    make_adamw("adamw_tiny_gray", (8, 2, 1, 16, 2, 2, 16, 1, 2), 3, 0.75, False, 11, outdir)
    make_adamw("adamw_small_rgb_normpix", (12, 4, 3, 24, 2, 3, 16, 2, 2), 2, 0.6, True, 12, outdir)
    # Downstream: the classifier of models_vit.py (both heads) with a few fine-tuning steps
    # (layer-wise lr decay), and the linear probe's BatchNorm + Linear head with LARS.
    make_classifier("classifier_gray_gap", (8, 2, 1, 16, 3, 2), 5, True, 0.1, 4, 13, outdir)
    make_classifier("classifier_rgb_cls", (12, 4, 3, 24, 2, 3), 3, False, 0.0, 3, 14, outdir)
    make_linear_probe("linear_probe_lars", 12, 4, 32, 4, 15, outdir)
    # Another resolution: the official interpolate_pos_embed (bicubic, align_corners=False).
    make_interpolate_pos_embed(outdir)
