#!/usr/bin/python3
"""Second phase of the demo tokenizer (issue 18): the decoder alone trains on, the encoder frozen.

    /usr/bin/python3 tools/demo/finetune_decoder.py --tokenizer RUN/demo-tokenizer.pt --out RUN2 --steps 1500

Why a second phase: a frozen encoder gives the same codes as the first phase's, so the transformer can be trained on
those codes (train_nbp.py) while this runs beside it, and the decoder, the part that caps the reconstruction (see
weights/demo/README.md), gets the remaining hours. Same loss as train_tokenizer.py (L1 + L2), Adam with 50 warm-up
steps and cosine decay, the residual branches at --branch-lr-scale of --lr. Windows of --frames frames (9 by default:
3 latent frames, so the decoder also learns latent frames that follow video frames, as frames 6-17 of a clip do).
With --levels the frozen encoder's output is rounded onto other FSQ levels (a smaller codebook: fewer, steadier codes
for the transformer to predict) and the decoder learns to read them; OUT/demo-tokenizer.pt is written before the first
step too, so the transformer's tokenizing can start while the decoder trains.

With --predictions NBP.ckpt (a trained demo transformer, whole 17-frame clips) the decoder also learns the transformer's
greedy continuations: half of each batch is decoded from its true codes, half from the codes of its first 5 frames
followed by the transformer's 12 greedy predicted frames' codes, both against the true clip. A code the transformer puts
where it is unsure then decodes to what such predictions look like on average, not to the one clip it stood for: the
predicted frames' PSNR rises, the reconstruction of true codes (the ceiling) may fall a little.

Reproducible and resumable like train_tokenizer.py: the clips of step s are clips.clip(seed, s·batch + i) of another
seed than the first phase's, the state is saved every --save-every steps, and OUT/demo-tokenizer.pt (the official .pt
layout, the encoder unchanged) is written at each save with the held-out PSNR printed.
"""
import argparse
import math
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from run_state import optimise, resume  # noqa: E402
from tokenizer_files import load_tokenizer, parse_levels  # noqa: E402
from train_nbp import greedy, load_trained  # noqa: E402
from train_tokenizer import batch_of, reconstruction_loss, save_checkpoint, straight_through_codes  # noqa: E402


def with_predictions(model, predictor, video):
    """The decoder's input codes ([B, 6, 5, h, w] in [-1, 1]) for whole clips: the first half of the batch its true
    codes, the second half its first two latent frames' codes (frames 1-5) then the transformer's greedy continuation."""
    transformer, block = predictor
    index, _ = model.encode(video)
    n, t, h, w = index.shape
    half = index[n // 2:].reshape(n - n // 2, -1)
    predicted = greedy(transformer, half[:, :2 * h * w], t * h * w, block).reshape(-1, t, h, w)
    return model.codes(torch.cat([index[:n // 2], predicted], dim=0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", required=True, help="the first phase's demo-tokenizer.pt")
    parser.add_argument("--out", required=True, help="folder for this phase's run state and demo-tokenizer.pt")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--branch-lr-scale", type=float, default=0.1)
    parser.add_argument("--frames", type=int, default=9, help="frames per training window (1 + 4n)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--levels", default=None, help="re-quantise the frozen encoder at these FSQ levels (e.g. 3,3,3,3,3,3; "
                        "default: the tokenizer's own); OUT/demo-tokenizer.pt names them")
    parser.add_argument("--predictions", default=None, help="a demo-nbp.ckpt: train on its greedy continuations too (needs --frames 17)")
    args = parser.parse_args()
    if args.predictions and args.frames != 17:
        parser.error(f"--predictions decodes whole clips: --frames must be 17, found {args.frames}")
    if (args.frames - 1) % 4 or not 1 <= args.frames <= 17:
        parser.error(f"--frames must be 1 + 4n <= 17, found {args.frames}")
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    state_path = os.path.join(args.out, "decoder-run.pt")

    model, widths = load_tokenizer(args.tokenizer, parse_levels(args.levels) if args.levels else None)
    model.train()
    model.encoder_layers.requires_grad_(False)
    decoder = model.decoder_layers
    branches = [p for name, p in decoder.named_parameters() if ".fn." in name]
    main_path = [p for name, p in decoder.named_parameters() if ".fn." not in name]
    optimizer = torch.optim.Adam([{"params": main_path, "scale": 1.0}, {"params": branches, "scale": args.branch_lr_scale}], lr=args.lr)
    settings = {"tokenizer": os.path.abspath(args.tokenizer), "seed": args.seed, "batch": args.batch, "frames": args.frames,
                "steps": args.steps, "resolution": args.resolution, "lr": args.lr, "branch_lr_scale": args.branch_lr_scale, "levels": model.levels,
                "predictions": os.path.abspath(args.predictions) if args.predictions else None}
    predictor = load_trained(args.predictions) if args.predictions else None
    step, log = resume(state_path, settings, model, optimizer, args.steps)
    held_out = batch_of(1_000_001, 0, 4, args.resolution)  # the first phase's held-out clips: the PSNRs continue its log
    if step == 0:  # the untrained decoder's PSNR at these levels, and a demo-tokenizer.pt to tokenize with meanwhile
        save_checkpoint(model, widths, held_out, state_path, settings, optimizer, step, log, args.out)

    started = time.time()
    while step < args.steps:
        lr = args.lr * min(1, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        video = batch_of(args.seed, step, args.batch, args.resolution, args.frames)
        with torch.no_grad():
            codes = with_predictions(model, predictor, video) if predictor else straight_through_codes(model, video)

        def loss_of():
            return reconstruction_loss(decoder(codes), video)

        step = optimise(model, optimizer, loss_of, lr, step, args.steps, log, started)
        if step % args.save_every == 0 or step == args.steps:
            save_checkpoint(model, widths, held_out, state_path, settings, optimizer, step, log, args.out)


if __name__ == "__main__":
    main()
