#!/usr/bin/python3
"""Where a demo transformer's frame prediction loses (issue 18): PSNR per predicted latent frame, and which codes it
gets right on the cells objects cover and on the background.

    /usr/bin/python3 tools/demo/diagnose_prediction.py --weights W --tokenizer T [--clips 32] [--device cuda] [--code-noise]

W is a demo-nbp.ckpt (train_nbp.py) or its .safetensors, T the tokenizer (.pt or .safetensors); the resolution is the
transformer's. Held-out clips of seed --seed drawn by tools/demo/clips.py (Python's generator: its clips are not the
C# `nbp-run eval` set, and its PSNRs sit ~1.6 dB lower at R = 32; compare rows of this script with each other). For
frames 6-9, 10-13, 14-17 (latent frames 2-4) and all 12, mean PSNR over clips of:
- greedy: the engine's task (latent frames 0-1 encoded, 2-4 predicted greedily, all 5 decoded);
- one ahead: each latent frame predicted from the true codes of the ones before it (teacher forced): greedy close to
  this means the errors do not compound, the first prediction is already what loses;
- copy-last (frame 5 repeated) and the ceiling (the true codes decoded).
Then the share of predicted codes that equal the true ones, on cells an object covers in any of the latent frame's
video frames and on the rest. --code-noise adds the ceiling's PSNR with every digit of every predicted-frame code moved
one level up or down at random: how forgiving the decoder is of near misses.
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import clips  # noqa: E402
from tokenizer_files import load_tokenizer  # noqa: E402
from train_nbp import greedy, load_trained  # noqa: E402

SPANS = (("6-9", slice(5, 9)), ("10-13", slice(9, 13)), ("14-17", slice(13, 17)), ("6-17", slice(5, 17)))


def psnr(a, b):
    """Mean over clips of the PSNR of a against b ([N, ...] in [0, 1])."""
    return float((10 * torch.log10(1 / ((a - b) ** 2).reshape(len(a), -1).mean(1))).mean())


def object_cells(x, side):
    """[N, 5·side²] bool: the latent cells an object covers in any of their video frames (latent 0 = frame 1, latent f =
    frames 4f-2..4f+1); an object pixel is one brighter than the contract's background (some channel > 40)."""
    n, cell = len(x), x.shape[2] // side
    lit = x.max(axis=-1) > 40  # [N, 17, R, R]
    frames = [lit[:, :1]] + [lit[:, 4 * f - 3:4 * f + 1] for f in range(1, 5)]
    return torch.from_numpy(np.concatenate(
        [f.reshape(n, f.shape[1], side, cell, side, cell).any(axis=(1, 3, 5)).reshape(n, -1) for f in frames], axis=1))


def moved_one_level(index, levels, rng):
    """Every code's digits each moved one level up or down (kept inside its range): a near miss in every digit."""
    out, basis = torch.zeros_like(index), 1
    for level in levels:
        digit = index // basis % level
        step = torch.from_numpy(rng.choice([-1, 1], size=tuple(index.shape))).to(index.device)
        moved = digit + step
        moved = torch.where((moved < 0) | (moved >= level), digit - step, moved)
        out += moved * basis
        basis *= level
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seed", type=int, default=9001)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--code-noise", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tokenizer = load_tokenizer(args.tokenizer)[0].to(device)
    model, block = load_trained(args.weights)
    model.to(device)
    side = block  # a block is one latent row of 8-pixel cells
    resolution = 8 * side
    per = side * side  # codes per latent frame
    x = np.stack([clips.clip(args.seed, i, resolution) for i in range(args.clips)])
    video = torch.from_numpy(x).to(device).permute(0, 4, 1, 2, 3).float() / 255
    with torch.no_grad():
        index, _ = tokenizer.encode(video)
        codes = index.reshape(args.clips, -1)
        predicted = greedy(model, codes[:, :2 * per], 5 * per, block)
        one_ahead = codes.clone()
        for f in (2, 3, 4):
            one_ahead[:, f * per:(f + 1) * per] = greedy(model, codes[:, :f * per], (f + 1) * per, block)[:, f * per:]
        decoded = {name: tokenizer.decode(c.reshape(args.clips, 5, side, side)) for name, c in
                   (("greedy", predicted), ("one ahead", one_ahead), ("ceiling", codes))}
        if args.code_noise:
            noisy = codes.clone()
            noisy[:, 2 * per:] = moved_one_level(codes[:, 2 * per:], tokenizer.levels, np.random.default_rng(0))
            decoded["ceiling, digits +-1"] = tokenizer.decode(noisy.reshape(args.clips, 5, side, side))
    decoded["copy-last"] = video[:, :, 4:5].expand(-1, -1, 17, -1, -1)
    print(f"{args.clips} clips of seed {args.seed} at {resolution}x{resolution}, {os.path.basename(args.weights)}: PSNR dB of")
    print("| | " + " | ".join(f"frames {name}" for name, _ in SPANS) + " |")
    print("|---|" + "---|" * len(SPANS))
    for name, frames in decoded.items():
        print(f"| {name} | " + " | ".join(f"{psnr(frames[:, :, span], video[:, :, span]):.2f}" for _, span in SPANS) + " |")
    lit = object_cells(x, side).to(device)
    print("codes equal to the true ones, latent frames 2 / 3 / 4:")
    for name, c in (("greedy", predicted), ("one ahead", one_ahead)):
        right = c == codes
        parts = [f"objects {right[:, f * per:(f + 1) * per][lit[:, f * per:(f + 1) * per]].float().mean():.3f}, "
                 f"background {right[:, f * per:(f + 1) * per][~lit[:, f * per:(f + 1) * per]].float().mean():.3f}" for f in (2, 3, 4)]
        print(f"- {name}: " + " / ".join(parts))
    print(f"- object cells: {lit[:, 2 * per:].float().mean():.2f} of the predicted cells")


if __name__ == "__main__":
    main()
