#!/usr/bin/python3
"""Trains the demo video tokenizer (issue 18) on the synthetic clips of weights/demo/README.md: TOKENIZER.md's
MAGVIT-v2/FSQ architecture (tools/reference/tokenizer_model.py) at reduced widths, FSQ levels 8,8,8,5,5,5 with the
straight-through estimator, an L1 + L2 reconstruction loss.

    /usr/bin/python3 tools/demo/train_tokenizer.py --out /tmp/demo-train --steps 20000        # resumes if interrupted

Reproducible: the clips of step s are clips.clip(seed, s·batch + i), the initial weights come from torch.manual_seed;
the run state (weights, optimizer, step) is saved every --save-every steps under a temporary name and renamed, so a
killed run continues from its last save with the same data stream. At the end (and at each save) OUT/demo-tokenizer.pt
is written in the official tokenizer .pt layout, which `nbp-run convert` reads.
"""
import argparse
import math
import os
import pickle
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import clips  # noqa: E402
from run_state import optimise, resume, save_atomically, save_run  # noqa: E402
from tokenizer_model import LEVELS, Tokenizer  # noqa: E402


def straight_through_codes(model, video):
    """Encoder -> FSQ with the straight-through estimator -> the decoder's input codes in [-1, 1]."""
    bounded = model.fsq_bounded(model.encoder_layers(video))
    rounded = bounded + (torch.round(bounded) - bounded).detach()
    halves = torch.tensor([levels // 2 for levels in LEVELS], dtype=video.dtype).view(1, -1, 1, 1, 1)
    return rounded / halves


def batch_of(seed, step, batch, resolution):
    """Clips step·batch .. step·batch + batch - 1 as a float tensor [B, 3, 17, R, R] in [0, 1]."""
    x = np.stack([clips.clip(seed, step * batch + i, resolution) for i in range(batch)])
    return torch.from_numpy(x).permute(0, 4, 1, 2, 3).float() / 255


def official_layout(model, widths):
    """The tokenizer .pt layout of the official release: 'module.'-prefixed state dict, a version, pickled config bytes."""
    state = {"module." + k: v.detach().clone() for k, v in model.state_dict().items()}
    config = pickle.dumps({"levels": LEVELS, "widths": widths, "trained_on": "tools/demo/clips.py"}, protocol=2)
    return {"model_state_dict": state, "version": "1.0", "config": config}


def psnr(a, b):
    mse = F.mse_loss(a, b).item()
    return 10 * math.log10(1 / max(mse, 1e-12))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for the run state and demo-tokenizer.pt")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--widths", default="64,32,32", help="the widths standing for TOKENIZER.md's 512,256,128 (multiples of 32)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    widths = dict(zip((512, 256, 128), map(int, args.widths.split(","))))
    if any(w % 32 for w in widths.values()):
        parser.error(f"--widths must be multiples of 32 (GroupNorm has 32 groups), found {args.widths}")
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    state_path = os.path.join(args.out, "tokenizer-run.pt")

    torch.manual_seed(args.seed)
    model = Tokenizer(widths)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    settings = {"widths": args.widths, "seed": args.seed, "batch": args.batch}
    step, log = resume(state_path, settings, model, optimizer, args.steps)

    held_out = batch_of(args.seed + 1_000_000, 0, 4, args.resolution)  # never trained on: another seed
    started = time.time()
    while step < args.steps:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))  # cosine decay over the whole run
        video = batch_of(args.seed, step, args.batch, args.resolution)
        decoded = model.decoder_layers(straight_through_codes(model, video))
        loss = F.l1_loss(decoded, video) + F.mse_loss(decoded, video)
        step = optimise(model, optimizer, loss, lr, step, args.steps, log, started)
        if step % args.save_every == 0 or step == args.steps:
            with torch.no_grad():
                held = psnr(model.decoder_layers(straight_through_codes(model, held_out)).clamp(0, 1), held_out)
            print(f"step {step}: held-out reconstruction PSNR {held:.2f} dB", flush=True)
            save_run(state_path, settings, model, optimizer, step, log)
            save_atomically(official_layout(model, widths), os.path.join(args.out, "demo-tokenizer.pt"))


if __name__ == "__main__":
    main()
