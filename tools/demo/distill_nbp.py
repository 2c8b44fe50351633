#!/usr/bin/python3
"""Trains the demo transformer by distillation (issue 18): a pixel predictor teaches it which codes to emit.

    /usr/bin/python3 tools/demo/distill_nbp.py teacher --tokenizer T --out RUN --steps 4000        # resumes
    /usr/bin/python3 tools/demo/distill_nbp.py targets --tokenizer T --out RUN --clips 3000 [--part K/N]
    /usr/bin/python3 tools/demo/distill_nbp.py student --tokenizer T --out RUN --steps 1500 --trunk-lr 3e-4   # resumes

Why: trained on the encoder's codes, a transformer's argmax is the likeliest code, and where an object will be is
uncertain from the codes of frames 1-5, so the likeliest code of an object's cell is almost never the true one and
decodes to a wrongly coloured blob (weights/demo/README.md, "Where the prediction loses"). A predictor of the next
block's pixels trained by squared error learns the conditional mean instead, which is what PSNR rewards, and the
encoder turns that mean picture back into codes the decoder renders close to it. Those codes are a function of the
context, so a transformer can learn them, and its greedy argmax then reproduces them.

- teacher: train_nbp's transformer shape (4 layers, 4 heads, width 96, block-causal) reading the shipped tokenizer's
  codes of seed-2 clips (an embedding that is an MLP of each code's 6 FSQ values plus a learned table) and regressing
  the pixels of each next-block cell (8x8 pixels of 4 frames), teacher forced, batch 32, AdamW 1e-3 with 200 warm-up
  steps and cosine decay. RUN/teacher.pt.
- targets: for the first --clips training clips, latent frames 2, 3, 4 in turn: the teacher predicts the frame's 16
  cells from the codes so far, its pixels fill the frame's 4 video frames, and the encoder (frames up to there; it is
  causal) gives that latent frame's codes, which the next turn reads. Cached in RUN/distilled-2/, 500 clips a file.
- student: MODEL.md's plain model (embedding table, bias-free head) starting from the teacher's trunk: its embedding
  evaluated for every code, its position table, blocks and final norm (held fixed unless --trunk-lr > 0), trained on
  the distilled sequences (the last 8 held out) for latent frames 2-4: by default it regresses the distilled FSQ
  values before rounding and emits the nearest code (latent_objective's exact head construction); `--objective codes`
  is the full cross-entropy (train_nbp.NextCodeLoss). RUN/demo-nbp.ckpt, which `nbp-run convert` reads like
  train_nbp's.

Measured on 2 cores (weights/demo/README.md, "Distilled targets"): the student moved `nbp-run eval`'s greedy PSNR by
+0.04 dB; not shipped.
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import clips  # noqa: E402
from diagnose_prediction import psnr  # noqa: E402
from latent_objective import code_values, constant_channel_state, nearest_code_head, with_constant_channel  # noqa: E402
from pixel_objective import cell_pictures  # noqa: E402
from run_state import resume, save_atomically, save_run  # noqa: E402
from tokenizer_files import load_tokenizer, state_digest  # noqa: E402
from train_nbp import CHUNK, Block, NextCodeLoss, Transformer, block_causal, checkpoint_hyper, greedy, tokenize  # noqa: E402

R, SIDE, SEED, CLIPS = 32, 4, 2, 24000  # the teacher's clips: train_nbp's cache of seed 2 (the last 8 held out)
BLOCK, PER, LENGTH = SIDE, SIDE * SIDE, 5 * SIDE * SIDE  # a block is a latent row; 16 codes a latent frame; 80 a clip
PICTURE = 3 * 4 * 64  # a cell's pixels over its 4 frames
LAYERS, HEADS, WIDTH = 4, 4, 96
HELD_OUT_SEED = 9001  # the teacher's progress lines: 32 clips of it (Python's generator)


class PixelTeacher(nn.Module):
    """Codes in, the next block's cell pixels out (position p predicts the cell of code p + BLOCK)."""

    def __init__(self, values):
        super().__init__()
        self.register_buffer("values", values, persistent=False)
        self.inp = nn.Sequential(nn.Linear(values.shape[1], 4 * WIDTH), nn.GELU(), nn.Linear(4 * WIDTH, WIDTH))
        self.table = nn.Embedding(len(values), WIDTH)
        nn.init.normal_(self.table.weight, std=0.02)
        self.pos = nn.Parameter(torch.randn(1, LENGTH, WIDTH) * 0.02)
        self.blocks = nn.ModuleList([Block(WIDTH, HEADS) for _ in range(LAYERS)])
        self.ln = nn.LayerNorm(WIDTH)
        self.out = nn.Linear(WIDTH, PICTURE)

    def embed(self, ids):
        return self.inp(self.values[ids]) + self.table(ids)

    def hidden(self, ids, mask):
        h = self.embed(ids) + self.pos[:, :ids.shape[1]]
        for block in self.blocks:
            h = block(h, mask)
        return self.ln(h)

    def forward(self, ids, mask):
        return self.out(self.hidden(ids, mask))


def pictures(video):
    """uint8 clips [N, 17, R, R, 3] -> [N, 80, PICTURE]: each code's cell pixels (latent 0 = frame 1's cell, 4 times)."""
    n = len(video)
    first = torch.from_numpy(video[:, :1]).float().div(255).reshape(n, 1, SIDE, 8, SIDE, 8, 3).permute(0, 2, 4, 1, 3, 5, 6)
    first = first.expand(-1, -1, -1, 4, -1, -1, -1).reshape(n, PER, -1)
    return torch.cat([first, cell_pictures(video, SIDE)], 1)


def cells_to_frames(cells):
    """[N, 16, PICTURE] cells of one latent frame -> its 4 video frames [N, 4, R, R, 3] (cell_pictures inverted)."""
    x = cells.reshape(len(cells), SIDE, SIDE, 4, 8, 8, 3).permute(0, 3, 1, 4, 2, 5, 6)
    return x.reshape(len(cells), 4, R, R, 3)


def encode(tokenizer, frames):
    """float clips [N, T, R, R, 3] in [0, 1] -> (codes [N, t·16], their FSQ values before rounding [N, t·16, 6] in the
    units of latent_objective.code_values), t = (T - 1) / 4 + 1 latent frames."""
    index, bounded = tokenizer.encode(frames.permute(0, 4, 1, 2, 3).contiguous())
    half = torch.tensor([level // 2 for level in tokenizer.levels], dtype=bounded.dtype)
    values = bounded.reshape(len(frames), len(half), -1).transpose(1, 2) / half
    return index.reshape(len(frames), -1), values


def distil(teacher, tokenizer, codes, video, mask):
    """(the distilled codes [N, 80], the FSQ values before rounding of their latent frames 2-4 [N, 48, 6]) of clips (true
    codes [N, 80], uint8 video [N, 17, R, R, 3]): latent frames 0-1 as they are, 2-4 as the encoder codes the
    teacher's pixels, each frame predicted from the distilled ones before it."""
    sequence, frames, values = codes.clone(), torch.from_numpy(video).float() / 255, []
    for t in (2, 3, 4):
        cells = teacher(sequence[:, :-BLOCK], mask)[:, t * PER - BLOCK:(t + 1) * PER - BLOCK].clamp(0, 1)
        frames[:, 4 * t - 3:4 * t + 1] = cells_to_frames(cells)
        index, bounded = encode(tokenizer, frames[:, :4 * t + 1])
        sequence[:, t * PER:(t + 1) * PER] = index[:, t * PER:]
        values.append(bounded[:, t * PER:])
    return sequence, torch.cat(values, 1)


def train_teacher(args, tokenizer, codes):
    teacher = PixelTeacher(code_values(tokenizer))
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.01)
    state_path = os.path.join(args.out, "teacher.pt")
    step, log = resume(state_path, {"phase": "teacher", "steps": args.steps, "batch": 32}, teacher, optimizer, args.steps)
    mask = block_causal(LENGTH - BLOCK, BLOCK)
    train_n = len(codes) - 8
    held = np.stack([clips.clip(HELD_OUT_SEED, i, R) for i in range(32)])
    with torch.no_grad():
        held_codes = encode(tokenizer, torch.from_numpy(held).float() / 255)[0]
    future = slice(2 * PER - BLOCK, None)  # the positions that predict latent frames 2-4
    held_truth = pictures(held)[:, BLOCK:][:, future]
    copy_last = pictures(np.repeat(held[:, 4:5], 17, 1))[:, BLOCK:][:, future]
    started = time.time()
    for step in range(step + 1, args.steps + 1):
        lr = 1e-3 * min(1, step / 200) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        rows = torch.from_numpy(np.random.default_rng([SEED, step]).integers(0, train_n, 32))
        video = np.stack([clips.clip(SEED, int(i), R) for i in rows])
        loss = ((teacher(codes[rows][:, :-BLOCK], mask) - pictures(video)[:, BLOCK:]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log.append((step, loss.item()))
        if step % 250 == 0 or step == args.steps:
            save_run(state_path, {"phase": "teacher", "steps": args.steps, "batch": 32}, teacher, optimizer, step, log)
            with torch.no_grad():
                predicted = teacher(held_codes[:, :-BLOCK], mask)[:, future].clamp(0, 1)
            print(f"step {step} loss {loss.item():.4f} held-out teacher-forced PSNR latents 2-4 {psnr(predicted, held_truth):.2f} "
                  f"(copy-last {psnr(copy_last, held_truth):.2f}) {(time.time() - started) / 60:.1f} min", flush=True)


def load_teacher(args, tokenizer):
    teacher = PixelTeacher(code_values(tokenizer))
    state = torch.load(os.path.join(args.out, "teacher.pt"), map_location="cpu")
    if state["step"] != state["settings"]["steps"]:
        sys.exit(f"{args.out}/teacher.pt: at step {state['step']} of {state['settings']['steps']}: finish the teacher first")
    teacher.load_state_dict(state["model"])
    return teacher.eval(), state["settings"]["steps"]


def make_targets(args, tokenizer, codes):
    teacher, teacher_steps = load_teacher(args, tokenizer)
    folder = os.path.join(args.out, f"distilled-{SEED}")
    os.makedirs(folder, exist_ok=True)
    stamp = os.path.join(folder, "teacher.txt")  # the cache holds one teacher's targets
    source = f"teacher of {teacher_steps} steps, {state_digest(teacher.state_dict())}"
    if os.path.exists(stamp):
        with open(stamp) as f:
            if f.read().strip() != source:
                sys.exit(f"{folder}: targets of another teacher: delete the folder")
    else:
        with open(stamp, "w") as f:
            f.write(source + "\n")
    part, parts = (int(v) for v in args.part.split("/"))
    mask = block_causal(LENGTH - BLOCK, BLOCK)
    started = time.time()
    for number, start in enumerate(range(0, args.clips, CHUNK)):
        end = min(args.clips, start + CHUNK)
        path = os.path.join(folder, f"{start:07d}-{end:07d}.npy")
        if number % parts != part or os.path.exists(path):
            continue
        chunk, chunk_values = [], []
        with torch.no_grad():
            for first in range(start, end, 16):
                indices = range(first, min(end, first + 16))
                video = np.stack([clips.clip(SEED, i, R) for i in indices])
                sequence, values = distil(teacher, tokenizer, codes[first:first + len(indices)], video, mask)
                chunk.append(sequence.numpy().astype(np.int32))
                chunk_values.append(values.numpy())
        np.save(path[:-4] + "-values.tmp.npy", np.concatenate(chunk_values))
        os.replace(path[:-4] + "-values.tmp.npy", path[:-4] + "-values.npy")  # before the codes: their file marks a chunk done
        np.save(path + ".tmp.npy", np.concatenate(chunk))
        os.replace(path + ".tmp.npy", path)
        print(f"distilled clips {start}-{end} of {args.clips} ({(time.time() - started) / 60:.1f} min)", flush=True)


def student_from(teacher, vocab, trunk_lr):
    """MODEL.md's model with the teacher's trunk: its embedding evaluated for every code; the head zero. The trunk is
    held fixed unless trunk_lr > 0."""
    model = Transformer(LAYERS, HEADS, WIDTH, LENGTH, vocab)
    with torch.no_grad():
        model.tok_emb.weight.copy_(teacher.embed(torch.arange(vocab)))
        model.pos_emb.copy_(teacher.pos)
        model.blocks.load_state_dict(teacher.blocks.state_dict())
        model.ln_f.load_state_dict(teacher.ln.state_dict())
        model.head.weight.zero_()
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name == "head.weight" or trunk_lr > 0)
    return model


def exported(model, predict, values, spread):
    """MODEL.md's tensors of a student: as it is (codes objective), or with the head whose argmax is the code nearest
    to predict's values and LN_f's last channel constant 1 (values objective; latent_objective's construction)."""
    state = {k: v.detach() for k, v in model.state_dict().items() if not k.startswith("predict.")}
    return state if predict is None else constant_channel_state(state, nearest_code_head(values, predict.weight.detach(), spread))


def train_student(args, tokenizer):
    teacher, _ = load_teacher(args, tokenizer)
    folder = os.path.join(args.out, f"distilled-{SEED}")
    names = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".npy") and not f.endswith((".tmp.npy", "-values.npy")))
    sequences = torch.from_numpy(np.concatenate([np.load(os.path.join(folder, n + ".npy")) for n in names])).long()
    vocab = math.prod(tokenizer.levels)
    model = student_from(teacher, vocab, args.trunk_lr)
    future = slice(2 * PER - BLOCK, None)
    train_n = len(sequences) - 8  # the last 8 distilled clips are the student's held-out check
    codes_values = code_values(tokenizer)
    if args.objective == "values":
        wanted = torch.from_numpy(np.concatenate([np.load(os.path.join(folder, n + "-values.npy")) for n in names])).float()
        model.predict = nn.Linear(WIDTH, len(tokenizer.levels), bias=False)
        head = list(model.predict.parameters())

        def error(hidden, rows):
            return ((model.predict(with_constant_channel(hidden)) - wanted[rows]) ** 2).mean()
    else:
        loss_of_codes = NextCodeLoss(model, np.unique(sequences[:train_n, 2 * PER:].numpy()))
        head = [model.head.weight]
        print(f"{len(loss_of_codes.used)} of {vocab} codes in the distilled latent frames 2-4", flush=True)

        def error(hidden, rows):
            return loss_of_codes(model, hidden, sequences[rows][:, 2 * PER:])
    print(f"{train_n} distilled clips to train on, objective {args.objective}", flush=True)
    trunk = [p for name, p in model.named_parameters() if p.requires_grad and all(p is not h for h in head)] if args.trunk_lr > 0 else []
    groups = [{"params": head, "scale": 1.0}] + ([{"params": trunk, "scale": args.trunk_lr / args.lr}] if trunk else [])
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    settings = {"phase": "student", "clips": len(sequences), "batch": args.batch, "lr": args.lr, "trunk_lr": args.trunk_lr,
                "objective": args.objective}
    state_path = os.path.join(args.out, "student.pt")
    step, log = resume(state_path, settings, model, optimizer, args.steps)
    mask = block_causal(LENGTH - BLOCK, BLOCK)

    def loss(rows):
        with torch.set_grad_enabled(torch.is_grad_enabled() and args.trunk_lr > 0):
            hidden = model.hidden(sequences[rows][:, :-BLOCK], mask)[:, future]
        return error(hidden, rows)

    held_rows = torch.arange(train_n, len(sequences))
    started = time.time()
    while step < args.steps:
        lr = args.lr * min(1, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr * group["scale"]
        rows = torch.from_numpy(np.random.default_rng([SEED, 7, step]).integers(0, train_n, args.batch))
        value = loss(rows)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        step += 1
        log.append((step, value.item()))
        if step % args.save_every == 0 or step == args.steps:
            with torch.no_grad():
                held = loss(held_rows).item()
                state = exported(model, getattr(model, "predict", None), codes_values, held)
                plain = Transformer(LAYERS, HEADS, WIDTH, LENGTH, vocab)
                plain.load_state_dict(state)
                prompts = sequences[held_rows]
                agree = (greedy(plain.eval(), prompts[:, :2 * PER], LENGTH, BLOCK)[:, 2 * PER:] == prompts[:, 2 * PER:]).float().mean().item()
            print(f"step {step}/{args.steps} loss {value.item():.4f} held-out {held:.4f}, greedy codes equal to the distilled "
                  f"ones {agree:.3f} ({(time.time() - started) / 60:.1f} min)", flush=True)
            save_run(state_path, settings, model, optimizer, step, log)
            hyper = checkpoint_hyper(LAYERS, HEADS, WIDTH, vocab, LENGTH, BLOCK, R)
            save_atomically({"global_step": step, "state_dict": {"transformer." + k: v for k, v in state.items()},
                             "hyper_parameters": {"args": hyper}}, os.path.join(args.out, "demo-nbp.ckpt"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=("teacher", "targets", "student"))
    parser.add_argument("--tokenizer", required=True, help="the shipped demo-tokenizer.safetensors (its codes are the engine's)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--clips", type=int, default=3000, help="targets: how many training clips to distil")
    parser.add_argument("--part", default="0/1", help="targets: K/N does every N-th cache file from the K-th (N processes side by side)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="student: the head's learning rate")
    parser.add_argument("--objective", choices=("codes", "values"), default="values",
                        help="student: cross-entropy over the distilled codes, or regress their FSQ values before rounding and emit the nearest code")
    parser.add_argument("--trunk-lr", type=float, default=0.0, help="student: the trunk's learning rate (0: held fixed)")
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    if args.phase != "targets" and args.steps is None:
        parser.error(f"{args.phase} needs --steps")
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)  # before the tokenizer is built: its modules' initialisation draws, then the teacher's
    tokenizer = load_tokenizer(args.tokenizer)[0]
    if args.phase == "student":
        train_student(args, tokenizer)
        return
    codes = torch.from_numpy(tokenize(tokenizer, args.tokenizer, SEED, CLIPS, R, os.path.join(args.out, f"tokens-{SEED}"))).long()
    if args.phase == "teacher":
        train_teacher(args, tokenizer, codes)
    else:
        make_targets(args, tokenizer, codes)


if __name__ == "__main__":
    main()
