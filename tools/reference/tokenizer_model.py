"""PyTorch reference of the MAGVIT-v2/FSQ video tokenizer, written from ../../../shared/spec/TOKENIZER.md.

Layers are built from a width map so a narrow test tokenizer has the same layer list and key names
as the real one ({512: 512, 256: 256, 128: 128} is full size).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

LEVELS = [8, 8, 8, 5, 5, 5]  # TOKENIZER.md's; a tokenizer file may name others (its config, or fsq_levels metadata)


def basis_of(levels):
    """index = sum_d digit_d * basis_d: basis_d is the product of the levels before d."""
    basis = [1]
    for levels_d in levels[:-1]:
        basis.append(basis[-1] * levels_d)
    return basis


class CausalConv3d(nn.Module):
    def __init__(self, cin, cout, k, stride=(1, 1, 1)):
        super().__init__()
        kt, kh, kw = (k, k, k) if isinstance(k, int) else k
        # F.pad order: w left/right, h top/bottom, t front/back; replicate edges, time only in front
        self.pad = (kw // 2, kw // 2, kh // 2, kh // 2, 2 * (kt // 2), 0)
        self.conv = nn.Conv3d(cin, cout, (kt, kh, kw), stride=stride)

    def forward(self, x):
        return self.conv(F.pad(x, self.pad, mode="replicate"))


class GroupNorm3D(nn.GroupNorm):
    """GroupNorm per frame: statistics over the group's channels x H x W of one frame."""

    def __init__(self, channels):
        super().__init__(32, channels, eps=1e-5)

    def forward(self, x):
        b, c, t, h, w = x.shape
        y = super().forward(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
        return y.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


class Swish(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1, 1))

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)


class ResidualUnit(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.fn = nn.Sequential(GroupNorm3D(cin), Swish(cin), CausalConv3d(cin, cout, 3),
                                GroupNorm3D(cout), Swish(cout), CausalConv3d(cout, cout, 3))
        self.residual_fn = nn.Sequential(CausalConv3d(cin, cout, 1)) if cin != cout else nn.Identity()

    def forward(self, x):
        return self.fn(x) + self.residual_fn(x)


class Depth2Space3D(nn.Module):
    def __init__(self, factors):
        super().__init__()
        self.bt, self.bh, self.bw = factors

    def forward(self, x):
        b, c, t, h, w = x.shape
        bt, bh, bw = self.bt, self.bh, self.bw
        co = c // (bt * bh * bw)
        # channel = ((it*bh + ih)*bw + iw)*co + o  ->  [o, t*bt + it, h*bh + ih, w*bw + iw]
        x = x.reshape(b, bt, bh, bw, co, t, h, w).permute(0, 4, 5, 1, 6, 2, 7, 3)
        x = x.reshape(b, co, t * bt, h * bh, w * bw)
        return x[:, :, bt - 1:] if bt > 1 else x


def decoder_layers(wd):
    a, b, c = wd[512], wd[256], wd[128]
    layers = [CausalConv3d(6, a, 3)] + [ResidualUnit(a, a) for _ in range(8)]
    layers += [CausalConv3d(a, 8 * a, 3), Depth2Space3D((2, 2, 2)), ResidualUnit(a, b)] + [ResidualUnit(b, b) for _ in range(3)]
    layers += [CausalConv3d(b, 8 * b, 3), Depth2Space3D((2, 2, 2))] + [ResidualUnit(b, b) for _ in range(4)]
    layers += [CausalConv3d(b, 4 * b, 3), Depth2Space3D((1, 2, 2)), ResidualUnit(b, c)] + [ResidualUnit(c, c) for _ in range(3)]
    layers += [GroupNorm3D(c), Swish(c), CausalConv3d(c, 3, 3)]
    assert len(layers) == 30
    return nn.Sequential(*layers)


def encoder_layers(wd):
    a, b, c = wd[512], wd[256], wd[128]
    layers = [CausalConv3d(3, c, 3)] + [ResidualUnit(c, c) for _ in range(4)]
    layers += [CausalConv3d(c, c, 3, stride=(1, 2, 2)), ResidualUnit(c, b)] + [ResidualUnit(b, b) for _ in range(3)]
    layers += [CausalConv3d(b, b, 3, stride=(2, 2, 2))] + [ResidualUnit(b, b) for _ in range(4)]
    layers += [CausalConv3d(b, b, 3, stride=(2, 2, 2)), ResidualUnit(b, a)] + [ResidualUnit(a, a) for _ in range(7)]
    layers += [GroupNorm3D(a), Swish(a), nn.Conv3d(a, 6, 1)]
    assert len(layers) == 27
    return nn.Sequential(*layers)


class Tokenizer(nn.Module):
    def __init__(self, widths=None, levels=None):
        super().__init__()
        widths = widths or {512: 512, 256: 256, 128: 128}
        self.levels = list(levels or LEVELS)
        if len(self.levels) != 6 or min(self.levels) < 2:
            raise ValueError(f"FSQ levels {self.levels}: need 6 dimensions of at least 2 levels")
        self.basis = basis_of(self.levels)
        self.encoder_layers = encoder_layers(widths)
        self.decoder_layers = decoder_layers(widths)

    def fsq_bounded(self, z):
        """z [B, 6, ...] -> the pre-rounding values (MODEL: bounded = tanh(z + shift)·h - offset)."""
        out = []
        for d, levels in enumerate(self.levels):
            h = (levels - 1) * (1 - 1e-3) / 2
            offset = 0.5 if levels % 2 == 0 else 0.0
            shift = torch.tan(torch.tensor(offset / h, dtype=z.dtype))
            out.append(torch.tanh(z[:, d] + shift) * h - offset)
        return torch.stack(out, dim=1)

    def encode(self, video):
        """video [B, 3, T, H, W] in [0, 1] -> (indices [B, t, h, w], pre-rounding values [B, 6, t, h, w])."""
        bounded = self.fsq_bounded(self.encoder_layers(video))
        digits = torch.round(bounded)  # half to even
        index = torch.zeros_like(digits[:, 0], dtype=torch.long)
        for d, levels in enumerate(self.levels):
            index += (digits[:, d].long() + levels // 2) * self.basis[d]
        return index, bounded

    def codes(self, index):
        """indices [B, t, h, w] -> codes [B, 6, t, h, w] in [-1, 1]."""
        out = []
        for d, levels in enumerate(self.levels):
            half = levels // 2
            digit = torch.div(index, self.basis[d], rounding_mode="floor") % levels
            out.append((digit - half).float() / half)
        return torch.stack(out, dim=1)

    def decode(self, index):
        return self.decoder_layers(self.codes(index)).clamp(0, 1)
