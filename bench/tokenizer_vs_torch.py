#!/usr/bin/python3
"""Full-size tokenizer on the CPU: nbp-run decode/encode (C#) vs the PyTorch reference, same machine, same script.

    bash bench/tokenizer_vs_torch.sh

Decode: 5 latent frames (16x16) -> 17 frames of 128x128. Encode: 5 frames of 128x128 -> 2 latent frames.
Random weights with the published widths (512/256/128). nbp-run runs with --conv auto (Winograd F(4x4,3x3)
from 32x32 frames up) and --conv im2col; each prints its one-time CPU weight preparation apart from the
decode/encode time (PyTorch's model construction is not timed either). PyTorch runs twice: as Debian's torch starts
(1 thread) and as it should be run (OpenBLAS, torch.set_num_threads(os.cpu_count())).
"""
import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools", "reference"))
import safetensors_io  # noqa: E402
from tokenizer_model import Tokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    model = Tokenizer().eval()
    weights = os.path.join(args.out, "tokenizer-random.safetensors")
    if not os.path.exists(weights):
        safetensors_io.save(weights, {k: v.numpy() for k, v in model.state_dict().items()})
    codes = torch.randint(0, 64000, (1, 5, 16, 16))
    video = torch.rand(1, 3, 5, 128, 128)
    codes_file = os.path.join(args.out, "tokenizer-codes.txt")
    with open(codes_file, "w") as f:
        f.write(" ".join(map(str, codes.flatten().tolist())) + "\n")
    frames_dir = os.path.join(args.out, "tokenizer-frames")
    os.makedirs(frames_dir, exist_ok=True)
    threads = os.cpu_count()

    rows = []
    prep = {}
    for conv in ("auto", "im2col"):
        cmd = [args.exe, "decode", "--tokenizer", weights, "--tokens", codes_file, "--out", os.path.join(args.out, "tokenizer-decoded"),
               "--threads", str(threads), "--backend", "cpu", "--conv", conv]
        print("+ " + " ".join(cmd), flush=True)
        err = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
        decode_s = float(re.search(r"decode on \S+ took ([0-9.]+) s", err).group(1))
        decode_prep = float(re.search(r"CPU weight preparation took ([0-9.]+) s", err).group(1))
        peak = re.search(r"decode on .* peak (\d+) MiB", err).group(1)
        # encode: 5 frames of the decoded output
        cmd = [args.exe, "encode", "--tokenizer", weights, "--input", os.path.join(args.out, "tokenizer-decoded"), "--frames", "5",
               "--tokens-out", os.path.join(args.out, "tokenizer-encoded.txt"), "--threads", str(threads), "--backend", "cpu", "--conv", conv]
        print("+ " + " ".join(cmd), flush=True)
        err = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
        encode_s = float(re.search(r"encode on \S+ took ([0-9.]+) s", err).group(1))
        encode_prep = float(re.search(r"CPU weight preparation took ([0-9.]+) s", err).group(1))
        name = f"nbp-run (C#), --conv {conv}"
        prep[name] = (decode_prep, encode_prep)
        rows.append((name, threads, decode_s, encode_s))
        print(rows[-1], prep[name], flush=True)

    for n in (1, threads):
        torch.set_num_threads(n)
        with torch.no_grad():
            start = time.perf_counter()
            model.decode(codes)
            dec = time.perf_counter() - start
            start = time.perf_counter()
            model.encode(video)
            enc = time.perf_counter() - start
        rows.append((f"PyTorch {torch.__version__}", n, dec, enc))
        print(rows[-1], flush=True)

    ours = rows[0]
    lines = [f"Full-size tokenizer on the CPU, {datetime.date.today()}, {platform.node()} ({threads} cores), activations peak (C#) {peak} MiB", "",
             "| implementation | threads | decode 5 latent -> 17 frames, s | encode 5 frames, s | one-time weight prep (decode / encode), s | decode: C# auto faster by | encode: C# auto faster by |",
             "|---|---|---|---|---|---|---|"]
    for name, n, dec, enc in rows:
        p = f"{prep[name][0]:.2f} / {prep[name][1]:.2f}" if name in prep else "-"
        lines.append(f"| {name} | {n} | {dec:.2f} | {enc:.2f} | {p} | {'-' if name == ours[0] else f'{dec / ours[2]:.2f}x'} | "
                     f"{'-' if name == ours[0] else f'{enc / ours[3]:.2f}x'} |")
    table = "\n".join(lines)
    print("\n" + table)
    with open(os.path.join(args.out, "tokenizer-table.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
