#!/usr/bin/python3
"""Trains the demo video tokenizer (issue 18) on the synthetic clips of weights/demo/README.md: TOKENIZER.md's
MAGVIT-v2/FSQ architecture (tools/reference/tokenizer_model.py) at reduced widths, FSQ levels 8,8,8,5,5,5 with the
straight-through estimator, an L1 + L2 reconstruction loss.

    /usr/bin/python3 tools/demo/train_tokenizer.py --out RUN --steps 5000     # resumes if interrupted

What makes it affordable on 2 cores: R = 32 (the data contract at 32x32; a 64x64 step costs 4x) and, the network being
causal, windows of --frames frames (5: 2 latent frames; a window of a clip is a clip of the contract), after
--image-steps steps on single frames (1-frame windows: ~5x cheaper a step, and they learn the spatial code, which
5-frame windows from the start did not within 400 steps: 15.2-15.3 dB, the background alone). Optionally
--crop: windows cropped to crop x crop for --crop-steps steps, then whole frames (GroupNorm's statistics are per frame).

What makes it learn at all (2026-11-29, measured on 32x32 single frames, held-out PSNR after 500 steps): the decoder's
20 residual units. Each starts as the identity (its last conv zero), but its branch ends in GroupNorm-normalised
features, so as soon as Adam moves the last conv (every weight by ~lr a step, whatever its gradient's size) the branch
adds O(1) noise to a main-path signal that default initialisation has shrunk to ~0.03-0.1: at lr 1e-3 the decoder then
outputs the background colour and nothing else for as long as it was run (870 steps; 15.6 dB with the real encoder or
a plain one; 18.6 dB with the residual branches' learning rate at 3% of the rest; the encoder alone trains either
way). So: Adam at --lr 3e-4 (better than 1e-3 and 3e-3 on the decoder without its residual units) and the residual
branches (`*.fn.*` parameters) at --branch-lr-scale x that; 100 warm-up steps, cosine decay.

Reproducible: the clips of step s are clips.clip(seed, s·batch + i) and their windows a function of (seed, s, i); the
initial weights come from torch.manual_seed; the run state (weights, optimizer, step) is saved every --save-every steps
under a temporary name and renamed, so a killed run continues from its last save with the same data stream. At each
save OUT/demo-tokenizer.pt is written in the official tokenizer .pt layout, which `nbp-run convert` reads (give it
`--resolution R --dtype f16`), and the reconstruction PSNR of 4 whole clips of another seed is printed.
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
from tokenizer_model import Tokenizer  # noqa: E402


def straight_through_codes(model, video):
    """Encoder -> FSQ with the straight-through estimator -> the decoder's input codes in [-1, 1]."""
    bounded = model.fsq_bounded(model.encoder_layers(video))
    rounded = bounded + (torch.round(bounded) - bounded).detach()
    halves = torch.tensor([levels // 2 for levels in model.levels], dtype=video.dtype).view(1, -1, 1, 1, 1)
    return rounded / halves


def batch_of(seed, step, batch, resolution, frames=17, crop=None):
    """Clips step·batch .. step·batch + batch - 1 as a float tensor [B, 3, frames, side, side] in [0, 1]: each a window
    of `frames` consecutive frames and, with crop, a crop x crop square at multiples of 8 (the latent grid), both
    placed by a generator seeded with (seed, step, i). A window of a clip is itself a clip of the data contract (the
    motion is stationary), and the tokenizer is causal, so a window's codes are those of a clip of that length."""
    side = crop or resolution
    out = []
    for i in range(batch):
        x = clips.clip(seed, step * batch + i, resolution)
        # every window (start frame, crop corner on the latent grid), in an order drawn from (seed, step, i); the first
        # that shows enough of an object in each frame is taken, or, failing that, the one that shows the most
        corners = range(0, resolution - side + 1, 8)
        windows = [(t0, y0, x0) for t0 in range(17 - frames + 1) for y0 in corners for x0 in corners]
        order = np.random.default_rng([seed, step, i]).permutation(len(windows))
        t0, y0, x0 = windows[max(order, key=lambda w: fewest_object_pixels(x, windows[w], frames, side))]
        out.append(x[t0:t0 + frames, y0:y0 + side, x0:x0 + side])
    return torch.from_numpy(np.stack(out)).permute(0, 4, 1, 2, 3).float() / 255


def fewest_object_pixels(clip, window, frames, side, enough=16):
    """The fewest object pixels in any frame of a window of a clip, capped at `enough`. A crop must show an object in
    every frame: on a uniform frame every GroupNorm sees zero variance and its backward multiplies rounding noise by
    1/sqrt(eps) ~ 316 per layer, which reaches inf within ~15 layers (seen: gradients of 1e37, then inf). Whole frames
    always show an object. Object pixels are those with a channel above 40 (the background's channels are at most 40,
    each colour has a 255)."""
    t0, y0, x0 = window
    crop = clip[t0:t0 + frames, y0:y0 + side, x0:x0 + side]
    return min(enough, int((crop.max(axis=-1) > 40).sum(axis=(1, 2)).min()))


def official_layout(model, widths):
    """The tokenizer .pt layout of the official release: 'module.'-prefixed state dict, a version, pickled config bytes."""
    state = {"module." + k: v.detach().clone() for k, v in model.state_dict().items()}
    config = pickle.dumps({"levels": model.levels, "widths": widths, "trained_on": "tools/demo/clips.py"}, protocol=2)
    return {"model_state_dict": state, "version": "1.0", "config": config}


def reconstruction_loss(decoded, video):
    """L1 + L2: the L2 term is what PSNR measures; the L1 term keeps pulling on small errors (edges) once L2 is small."""
    return F.l1_loss(decoded, video) + F.mse_loss(decoded, video)


def psnr(a, b):
    mse = F.mse_loss(a, b).item()
    return 10 * math.log10(1 / max(mse, 1e-12))


def save_checkpoint(model, widths, held_out, state_path, settings, optimizer, step, log, out):
    """Prints the held-out reconstruction PSNR (whole clips, and their first frames), saves the run state and writes
    OUT/demo-tokenizer.pt in the official layout."""
    with torch.no_grad():
        decoded = model.decoder_layers(straight_through_codes(model, held_out)).clamp(0, 1)
    print(f"step {step}: held-out reconstruction PSNR {psnr(decoded, held_out):.2f} dB "
          f"(first frames {psnr(decoded[:, :, :1], held_out[:, :, :1]):.2f} dB)", flush=True)
    save_run(state_path, settings, model, optimizer, step, log)
    save_atomically(official_layout(model, widths), os.path.join(out, "demo-tokenizer.pt"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for the run state and demo-tokenizer.pt")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--branch-lr-scale", type=float, default=0.03,
                        help="the residual units' branches (*.fn.* parameters) learn at this fraction of --lr")
    parser.add_argument("--widths", default="64,32,32", help="the widths standing for TOKENIZER.md's 512,256,128 (multiples of 32)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--frames", type=int, default=5, help="frames per training window (1 + 4n)")
    parser.add_argument("--image-steps", type=int, default=1000,
                        help="first steps on single frames (1-frame windows: the spatial code, ~5x cheaper a step)")
    parser.add_argument("--crop", type=int, default=None, help="side of the training crops (a multiple of 8; default: whole frames)")
    parser.add_argument("--crop-steps", type=int, default=None,
                        help="steps on crops before whole frames (default: 90%% of --steps); whole-frame steps take "
                             "batch·(crop/R)² clips so a step costs the same")
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    widths = dict(zip((512, 256, 128), map(int, args.widths.split(","))))
    if any(w % 32 for w in widths.values()):
        parser.error(f"--widths must be multiples of 32 (GroupNorm has 32 groups), found {args.widths}")
    args.crop = args.crop or args.resolution
    if (args.frames - 1) % 4 or not 1 <= args.frames <= 17 or args.crop % 8 or not 8 <= args.crop <= args.resolution:
        parser.error(f"--frames must be 1 + 4n <= 17 and --crop a multiple of 8 <= R, found {args.frames}, {args.crop}")
    crop_steps = 0 if args.crop == args.resolution else int(0.9 * args.steps) if args.crop_steps is None else args.crop_steps
    whole_batch = max(1, args.batch * args.crop * args.crop // (args.resolution * args.resolution))
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    state_path = os.path.join(args.out, "tokenizer-run.pt")

    torch.manual_seed(args.seed)
    model = Tokenizer(widths)
    with torch.no_grad():  # each residual unit starts as the identity (its last conv zero): a 30-layer net then trains fast
        for name, p in model.named_parameters():
            if ".fn.5.conv." in name:
                p.zero_()
    branches = [p for name, p in model.named_parameters() if ".fn." in name]
    main_path = [p for name, p in model.named_parameters() if ".fn." not in name]
    optimizer = torch.optim.Adam([{"params": main_path, "scale": 1.0}, {"params": branches, "scale": args.branch_lr_scale}], lr=args.lr)
    settings = {"widths": args.widths, "seed": args.seed, "batch": args.batch, "frames": args.frames, "crop": args.crop,
                "crop_steps": crop_steps, "steps": args.steps, "resolution": args.resolution, "lr": args.lr,
                "branch_lr_scale": args.branch_lr_scale, "image_steps": args.image_steps}
    step, log = resume(state_path, settings, model, optimizer, args.steps)

    held_out = batch_of(args.seed + 1_000_000, 0, 4, args.resolution)  # never trained on: another seed
    started = time.time()
    while step < args.steps:
        lr = args.lr * min(1, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / args.steps))  # warm-up, cosine decay
        # single frames first (the spatial code); with --crop, crops until crop_steps, then whole frames so GroupNorm's
        # per-frame statistics see whole frames, as at inference
        frames = 1 if step < args.image_steps else args.frames
        if step < crop_steps:
            video = batch_of(args.seed, step, args.batch, args.resolution, frames, args.crop)
        else:
            video = batch_of(args.seed, step, whole_batch, args.resolution, frames)

        def loss_of():
            return reconstruction_loss(model.decoder_layers(straight_through_codes(model, video)), video)

        step = optimise(model, optimizer, loss_of, lr, step, args.steps, log, started)
        if step % args.save_every == 0 or step == args.steps:
            save_checkpoint(model, widths, held_out, state_path, settings, optimizer, step, log, args.out)


if __name__ == "__main__":
    main()
