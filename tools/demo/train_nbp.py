#!/usr/bin/python3
"""Trains the demo NBP transformer (issue 18): MODEL.md's architecture at small size, frame mode, block = one latent
row (4 tokens at 32x32), the next-block objective with teacher forcing under the block-causal mask, on the demo clips
tokenized by the demo tokenizer.

    /usr/bin/python3 tools/demo/train_nbp.py --tokenizer weights/demo/demo-tokenizer.safetensors --out RUN --steps N   # resumes

The clips (tools/demo/clips.py, seed --seed) are tokenized once into RUN/tokens-SEED/ (500 clips a file; `--tokenize-part
0/2` and `1/2` in two processes split that work, the training run then reads the files); batches are a fixed
function of (seed, step); the run state is saved atomically every --save-every steps and a rerun resumes from it.
RUN/demo-nbp.ckpt is a Lightning-style checkpoint (state_dict with transformer.* keys, hyper_parameters with the
training args), which `nbp-run convert` reads. `--objective latent|pixels` trains the same architecture to regress the
next block's FSQ values or cell pixels instead (latent_objective.py, pixel_objective.py); the checkpoint is still a
plain MODEL.md model (the shipped demo uses the default, cross-entropy over the codes).
"""
import argparse
import functools
import math
import multiprocessing
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
import safetensors_io  # noqa: E402
from tokenizer_files import code_source, load_tokenizer  # noqa: E402
from run_state import optimise, resume, save_atomically, save_run  # noqa: E402
from latent_objective import latent_error, latent_head, make_latent, nearest_codes, standard_state, with_constant_channel  # noqa: E402
from pixel_objective import cell_pictures, code_pictures, make_pixel, pixel_error, pixel_head  # noqa: E402



class Block(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.attn = nn.Module()
        for name in ("query", "key", "value", "proj"):
            setattr(self.attn, name, nn.Linear(c, c))
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c))

    def forward(self, x, mask):
        b, t, c = x.shape
        a = self.ln1(x)
        q, k, v = (getattr(self.attn, n)(a).view(b, t, self.heads, c // self.heads).transpose(1, 2) for n in ("query", "key", "value"))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)  # torch 1.13: no scaled_dot_product_attention
        y = torch.softmax(att.masked_fill(~mask, float("-inf")), dim=-1) @ v
        x = x + self.attn.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """MODEL.md §1-2: the keys below are the checkpoint's (transformer.tok_emb.weight, transformer.blocks.i.attn.query...)."""

    def __init__(self, layers, heads, c, positions, vocab):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, c)
        self.pos_emb = nn.Parameter(torch.zeros(1, positions, c))
        self.blocks = nn.ModuleList([Block(c, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(c)
        self.head = nn.Linear(c, vocab, bias=False)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def hidden(self, ids, mask):
        """LN_f of the last block's output: the head's input, [B, T, C]."""
        x = self.tok_emb(ids) + self.pos_emb[:, :ids.shape[1]]
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)


class NextCodeLoss:
    """The full V-way cross-entropy (V = the tokenizer's codebook), computed over the codes the training clips use.

    The head's rows of the codes no training clip uses are held at zero (zero at the start, never a gradient, and
    AdamW's decay keeps zero at zero), so each of their logits is exactly 0 and the softmax's normaliser is
    Σ_used exp(l_c) + (V - U)·exp(0): one extra column of constant logit log(V - U) stands for all of them. The loss
    equals the full cross-entropy of that model, at U/V of the head's cost (the head is >90% of a step at V = 64000).
    When every code is used (a small codebook) there is no such column."""

    def __init__(self, model, used):
        device = model.head.weight.device
        self.used = torch.from_numpy(used).long().to(device)
        vocab = model.head.out_features
        self.position = torch.full((vocab,), -1, dtype=torch.long, device=device)
        self.position[self.used] = torch.arange(len(used), device=device)
        self.rest = math.log(vocab - len(used)) if len(used) < vocab else None
        with torch.no_grad():
            unused = torch.ones(vocab, dtype=torch.bool, device=device)
            unused[self.used] = False
            model.head.weight[unused] = 0

    def __call__(self, model, hidden, targets):
        """Mean -log p(target) over all positions; a target outside the used codes has logit 0."""
        logits = hidden.reshape(-1, hidden.shape[-1]) @ model.head.weight[self.used].t()
        if self.rest is not None:
            logits_and_rest = torch.cat([logits, torch.full((logits.shape[0], 1), self.rest, dtype=logits.dtype, device=logits.device)], dim=1)
        else:
            logits_and_rest = logits
        normaliser = torch.logsumexp(logits_and_rest, dim=1)
        where = self.position[targets.reshape(-1)]
        target_logit = torch.where(where >= 0, logits.gather(1, where.clamp(min=0).view(-1, 1)).squeeze(1), logits.new_zeros(()))
        return (normaliser - target_logit).mean()


SHAPE_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "token_number_per_step")


def read_trained(path):
    """(state dict with transformer.* keys, {SHAPE_KEYS: int}) of a demo-nbp.ckpt written by this script, or of its
    converted .safetensors (fp16 values as fp32; the hyper-parameters from the metadata)."""
    if path.endswith(".safetensors"):
        tensors, meta = safetensors_io.load(path)
        return {k: torch.from_numpy(v.astype("float32")) for k, v in tensors.items()}, {k: int(meta[k]) for k in SHAPE_KEYS}
    # weights_only=False: the hyper-parameters are an argparse.Namespace (PyTorch >= 2.6 refuses those by default);
    # this reads only the checkpoints this script writes
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return saved["state_dict"], {k: getattr(saved["hyper_parameters"]["args"], k) for k in SHAPE_KEYS}


def initialise_from(model, path):
    """Starts model from a trained one (its .ckpt, or the shipped .safetensors): every tensor of the same name and shape
    is copied; blocks the trained model does not have start as the identity (their attention projection and second
    MLP layer zero, so each adds nothing to the residual stream): at step 0 the deeper model computes what the trained
    one did, and training goes on from there."""
    trained, hyper = read_trained(path)
    heads = hyper["n_head"]
    if heads != model.blocks[0].heads:
        sys.exit(f"{path}: n_head {heads}, this model has {model.blocks[0].heads}: the same weights would split into other heads")
    own = model.state_dict()
    copied = 0
    with torch.no_grad():
        for name, value in trained.items():
            name = name[len("transformer."):]
            if name not in own or own[name].shape != value.shape:
                sys.exit(f"{path}: tensor {name} {tuple(value.shape)} does not fit this model ({tuple(own[name].shape) if name in own else 'absent'})")
            own[name].copy_(value)
            copied += 1
        for i in range(len(model.blocks)):
            if f"transformer.blocks.{i}.ln1.weight" not in trained:
                for layer in (model.blocks[i].attn.proj, model.blocks[i].mlp[2]):
                    layer.weight.zero_()
                    layer.bias.zero_()
    print(f"initialised {copied} tensors from {path}", flush=True)


def checkpoint_hyper(layers, heads, width, vocab, length, block, resolution):
    """The hyper_parameters "args" of a demo-nbp.ckpt: the official training code's names, which nbp-run convert reads."""
    return argparse.Namespace(n_layer=layers, n_head=heads, n_embd=width, vocab_size=vocab, block_size=length,
                              token_number_per_step=block, semi_ar=True, hybrid=False, starts_with_bov=False, unconditional=True,
                              cond_token_num=0, resolution=resolution, sequence_length=17)


def block_causal(t, block):
    """MODEL.md §4 with no prefix: position i reads j when j's block is not after i's."""
    i = torch.arange(t).view(-1, 1) // block
    return torch.arange(t).view(1, -1) // block <= i


def load_trained(path):
    """(model in eval mode, block) from a demo-nbp.ckpt written by this script or its converted .safetensors."""
    state, hyper = read_trained(path)
    model = Transformer(*(hyper[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")))
    model.load_state_dict({k[len("transformer."):]: v for k, v in state.items()})
    return model.eval(), hyper["token_number_per_step"]


def greedy(model, prompt, length, block):
    """prompt codes [N, P] -> [N, length]: each step appends the argmax of every position of the next block (the
    engine's greedy generation, with the whole sequence recomputed instead of a KV cache)."""
    sequence = prompt
    with torch.no_grad():
        while sequence.shape[1] < length:
            hidden = model.hidden(sequence, block_causal(sequence.shape[1], block).to(sequence.device))
            sequence = torch.cat([sequence, (hidden[:, -block:] @ model.head.weight.t()).argmax(-1)], dim=1)
    return sequence


def fit_steps(steps, step, finish_by, timed_from, save_every, first=20, last=60):
    """(steps, timed_from): steps shortened, once, at step `last`, to what fits before finish_by at the pace of steps
    first..last (each save's held-out check and write counted in); the schedule's first `last` steps, still in warm-up,
    do not change. Never lengthens the run; the new count is printed so the log says where the cosine ends."""
    if step == first:
        return steps, time.time()
    if step != last or timed_from is None:
        return steps, timed_from
    pace = (time.time() - timed_from) / (last - first)
    pace *= 1 + 2 / save_every  # a save (held-out loss, two files) costs about two steps
    fitted = min(steps, max(last, last + int((finish_by - time.time()) / pace)))
    print(f"step {step}: {pace * 1000:.1f} ms a step; --steps {steps} -> {fitted} to finish by the deadline", flush=True)
    return fitted, None


def own_context(model, batch, mask, prompt, block, chosen, passes=2):
    """batch [N, T] with, in its `chosen` clips (a bool per clip), every code after the prompt replaced by the model's own
    teacher-forced argmax, iterated `passes` times (each pass reads the codes the last one wrote, so the second pass's
    later latent frames are predicted from predicted ones, as in generation). Scheduled sampling for the greedy drift:
    a model trained on true contexts alone meets its own mistakes only at generation time. The targets stay the true
    codes; the prompt's positions see only the prompt (block-causal), so their loss is unchanged."""
    if not chosen.any():
        return batch
    mixed = batch[chosen]
    with torch.no_grad():
        for _ in range(passes):
            predicted = (model.hidden(mixed[:, :-block], mask) @ model.head.weight.t()).argmax(-1)
            mixed = torch.cat([mixed[:, :prompt], predicted[:, prompt - block:]], dim=1)
    batch = batch.clone()
    batch[chosen] = mixed
    return batch


CHUNK = 500  # clips per cached token file


def tokenize(model, tokenizer_path, seed, count, resolution, folder, part=(0, 1), device="cpu", workers=1):
    """Codes [count, 5·(R/8)²] of clips.clip(seed, 0..count-1), encoded by the tokenizer (.pt or the shipped
    .safetensors), cached in folder 500 clips a file so an interrupted run keeps what it did. part = (k, n) does only
    the files k, k+n, ... (n processes side by side) and returns None; the training run reads them all. On a GPU the
    encoder runs in fp32 with TF32 off, on 64 clips at a time: the engine encodes in fp32, and TF32's 10-bit products
    would move many codes across FSQ rounding boundaries (fp32 in another summation order moves only the rare code that
    sits on one); `workers` processes draw the clips."""
    os.makedirs(folder, exist_ok=True)
    # what the codes depend on (encoder weights, levels, R); the file name that follows is only for people
    source = f"{code_source(model)} levels={','.join(map(str, model.levels))} R={resolution}"
    stamp = os.path.join(folder, "tokenizer.txt")  # the cache holds one tokenizer's codes
    if not os.path.exists(stamp) and os.listdir(folder):
        sys.exit(f"{folder}: token files without tokenizer.txt: delete the folder to tokenize again")
    if os.path.exists(stamp):
        with open(stamp) as f:
            cached = f.read()
        if cached.split(" (")[0] != source:
            sys.exit(f"{folder}: tokens of {cached.strip()}, not of {source} ({os.path.basename(tokenizer_path)}): delete the folder or use another --out")
    else:
        with open(stamp, "w") as f:
            f.write(f"{source} ({os.path.basename(tokenizer_path)})\n")
    pool = multiprocessing.Pool(workers) if workers > 1 else None  # before CUDA starts in this process
    codes, encoder = [], model.to(device)
    at_once = 8 if device == "cpu" else 64
    draw = functools.partial(clips.clip, seed, r=resolution)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    for number, start in enumerate(range(0, count, CHUNK)):
        path = os.path.join(folder, f"{start:07d}-{min(count, start + CHUNK):07d}.npy")
        if number % part[1] != part[0]:
            continue
        if not os.path.exists(path):
            chunk = []
            with torch.no_grad():
                for first in range(start, min(count, start + CHUNK), at_once):
                    indices = range(first, min(count, start + CHUNK, first + at_once))
                    x = np.stack(pool.map(draw, indices) if pool else [draw(i) for i in indices])
                    index, _ = encoder.encode(torch.from_numpy(x).to(device).permute(0, 4, 1, 2, 3).float() / 255)
                    chunk.append(index.reshape(index.shape[0], -1).cpu().numpy().astype(np.int32))
            np.save(path + ".tmp.npy", np.concatenate(chunk))
            os.replace(path + ".tmp.npy", path)
            print(f"tokenized clips {start}-{min(count, start + CHUNK)} of {count}", flush=True)
        codes.append(np.load(path))
    if pool:
        pool.close()
    encoder.to("cpu")
    return np.concatenate(codes) if part[1] == 1 else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", required=True, help="demo-tokenizer.pt from train_tokenizer.py, or the shipped .safetensors")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--clips", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--save-every", type=int, default=200)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--init", default=None, help="start from a trained model (.ckpt or .safetensors) of this width; extra blocks start as the identity")
    parser.add_argument("--objective", choices=("codes", "latent", "pixels"), default="codes",
                        help="codes: cross-entropy over the codebook; latent: regress the next block's FSQ values (latent_objective.py); "
                             "pixels: regress the next block's cell pixels (pixel_objective.py)")
    parser.add_argument("--tokenize-part", default=None, help="K/N: only tokenize every N-th cache file from the K-th, then stop")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine (tools/demo/gpu-train.sh): the same run, faster")
    parser.add_argument("--workers", type=int, default=1, help="processes drawing the clips while tokenizing")
    parser.add_argument("--own-context", type=float, default=0.0,
                        help="share of each batch's clips whose codes after the 5-frame prompt are the model's own argmax "
                             "(scheduled sampling, codes objective; see own_context)")
    parser.add_argument("--own-passes", type=int, default=2, help="--own-context's passes: how many latent frames deep its codes are the model's own")
    parser.add_argument("--finish-by", type=float, default=None,
                        help="a Unix time: after timing steps 20-60, shorten --steps so the schedule ends by then "
                             "(for a lent machine's fixed minutes, where a cut run would leave its cosine unfinished)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    side = args.resolution // 8
    block, length = side, 5 * side * side  # one latent row per step; 17 frames -> 5 latent frames
    prompt = 2 * side * side  # frames 1-5 are latent frames 0-1
    cache = os.path.join(args.out, f"tokens-{args.seed}")
    tokenizer = load_tokenizer(args.tokenizer)[0]
    vocab = math.prod(tokenizer.levels)  # a frame model's ids are the codes (MODEL.md §3)
    if args.tokenize_part:
        tokenize(tokenizer, args.tokenizer, args.seed, args.clips, args.resolution, cache, tuple(int(v) for v in args.tokenize_part.split("/")),
                 args.device, args.workers)
        return
    codes = torch.from_numpy(tokenize(tokenizer, args.tokenizer, args.seed, args.clips, args.resolution, cache, device=args.device,
                                      workers=args.workers)).long()
    assert codes.shape[1] == length, f"{codes.shape[1]} codes per clip, expected {length}"

    torch.manual_seed(args.seed)
    model = Transformer(args.layers, args.heads, args.width, length, vocab)
    latent, pixels = args.objective == "latent", args.objective == "pixels"
    if (latent or pixels) and args.init:
        sys.exit(f"--init starts a codes model; a {args.objective}-objective run starts from scratch")
    if latent:
        make_latent(model, tokenizer)
    if pixels:
        pictures_path = os.path.join(args.out, f"code-pictures-{args.seed}-{len(codes) - 8}.pt")  # of the training clips
        if not os.path.exists(pictures_path):
            save_atomically(code_pictures(codes[:-8], args.seed, args.resolution, vocab), pictures_path)
        pictures, seen = torch.load(pictures_path)
        print(f"{int(seen.sum())} of {vocab} codes have a picture", flush=True)
        make_pixel(model, tokenizer, pictures, seen)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    state_path = os.path.join(args.out, "nbp-run.pt")
    settings = {k: getattr(args, k) for k in ("layers", "heads", "width", "seed", "batch", "clips", "resolution", "init")}
    if args.objective != "codes":  # named only when not the default, so runs saved before the option still resume
        settings["objective"] = args.objective
    if args.own_context:
        if args.objective != "codes":
            sys.exit("--own-context is for the codes objective")
        settings["own_context"] = args.own_context
        if args.own_passes != 2:  # named only when not the default, as the objective is
            settings["own_passes"] = args.own_passes
    if args.init:
        initialise_from(model, args.init)
    held_out = codes[-8:].to(device)  # the last clips are never trained on
    train = codes[:-8]
    if latent or pixels:
        loss_of_codes = pixel_error if pixels else latent_error
    else:
        loss_of_codes = NextCodeLoss(model, np.unique(train.numpy()))
        print(f"{len(loss_of_codes.used)} of {vocab} codes appear in the {len(train)} training clips", flush=True)
    step, log = resume(state_path, settings, model, optimizer, args.steps)

    mask = block_causal(length - block, block).to(device)
    # tokenize() turned TF32 off so the codes match the engine's fp32 encoder; the training itself may use it
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    def targets(first_clips, batch):
        """What the positions of batch (codes of clips first_clips) predict: the next block's codes, or its cell pictures."""
        if not pixels:
            return batch[:, block:]
        return cell_pictures(np.stack([clips.clip(args.seed, int(i), args.resolution) for i in first_clips]), side).to(device)

    held_targets = targets(range(len(codes) - 8, len(codes)), held_out)
    if step == 0 and args.init:
        with torch.no_grad():
            held = loss_of_codes(model, model.hidden(held_out[:, :-block], mask), held_targets).item()
        print(f"step 0 (initialised): held-out loss {held:.4f}", flush=True)
    started = time.time()
    timed_from = None
    while step < args.steps:
        lr = args.lr * min(1, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        rows = torch.from_numpy(np.random.default_rng([args.seed, step]).integers(0, len(train), args.batch))
        batch = train[rows].to(device)
        wanted = targets(rows, batch)
        if args.own_context:
            # which clips, like the batch itself, a fixed function of (seed, step), so a resumed run continues this one
            chosen = np.random.default_rng([args.seed, step, 1]).random(args.batch) < args.own_context
            batch = own_context(model, batch, mask, prompt, block, torch.from_numpy(chosen).to(device), args.own_passes)
        # teacher forcing: the blocks 0..n-2 in, row r of each block predicts token r of the next block
        def loss_of():
            return loss_of_codes(model, model.hidden(batch[:, :-block], mask), wanted)

        step = optimise(model, optimizer, loss_of, lr, step, args.steps, log, started)
        if args.finish_by is not None:
            args.steps, timed_from = fit_steps(args.steps, step, args.finish_by, timed_from, args.save_every)
        if step % args.save_every == 0 or step == args.steps:
            with torch.no_grad():
                held = loss_of_codes(model, model.hidden(held_out[:, :-block], mask), held_targets).item()
            if pixels:
                print(f"step {step}: held-out error {held:.5f} a value", flush=True)
            elif latent:
                with torch.no_grad():
                    predicted = model.tok_emb.predict(with_constant_channel(model.hidden(held_out[:, :-block], mask)))
                accuracy = (nearest_codes(tokenizer.levels, predicted.cpu()) == held_out[:, block:].cpu()).float().mean().item()
                print(f"step {step}: held-out error {held:.5f} a value, nearest code right {accuracy:.3f}", flush=True)
            else:
                print(f"step {step}: held-out loss {held:.4f}", flush=True)
            save_run(state_path, settings, model, optimizer, step, log)
            hyper = checkpoint_hyper(args.layers, args.heads, args.width, vocab, length, block, args.resolution)
            if latent or pixels:
                tensors = standard_state(model, (pixel_head if pixels else latent_head)(model, held))
            else:
                tensors = model.state_dict()
            save_atomically({"global_step": step, "state_dict": {"transformer." + k: v.cpu() for k, v in tensors.items()},
                             "hyper_parameters": {"args": hyper}}, os.path.join(args.out, "demo-nbp.ckpt"))


if __name__ == "__main__":
    main()
