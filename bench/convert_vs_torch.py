#!/usr/bin/python3
"""`nbp-run convert` vs the Python reference converter on a K600-shaped Lightning checkpoint (issue 10).

    bash bench/convert_vs_torch.sh            # writes bench/out/k600.ckpt (3.5 GB) once, then times both

Both read the same file and must write identical bytes; each is timed as a whole process, one after
the other, with the checkpoint read once beforehand so both start from a warm page cache (this VM's
disk reads ~0.1 GB/s cold, which would time the disk, not the converters). nbp-run also fsyncs its
output before renaming it into place (crash safety); the reference does not.
"""
import argparse
import collections
import filecmp
import os
import subprocess
import sys
import time

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "bench", "out")


def make_checkpoint(path):
    torch.manual_seed(0)
    c, layers, vocab, positions = 1536, 24, 64000, 5120
    sd = collections.OrderedDict()
    sd["transformer.tok_emb.weight"] = torch.randn(vocab, c)
    sd["transformer.pos_emb"] = torch.randn(1, positions, c)
    for i in range(layers):
        b = f"transformer.blocks.{i}."
        for n in ("ln1", "ln2"):
            sd[b + n + ".weight"] = torch.ones(c)
            sd[b + n + ".bias"] = torch.zeros(c)
        for n in ("query", "key", "value", "proj"):
            sd[b + "attn." + n + ".weight"] = torch.randn(c, c) * 0.02
            sd[b + "attn." + n + ".bias"] = torch.zeros(c)
        sd[b + "mlp.0.weight"] = torch.randn(4 * c, c) * 0.02
        sd[b + "mlp.0.bias"] = torch.zeros(4 * c)
        sd[b + "mlp.2.weight"] = torch.randn(c, 4 * c) * 0.02
        sd[b + "mlp.2.bias"] = torch.zeros(c)
    sd["transformer.ln_f.weight"] = torch.ones(c)
    sd["transformer.ln_f.bias"] = torch.zeros(c)
    sd["transformer.head.weight"] = torch.randn(vocab, c) * 0.02
    args = argparse.Namespace(n_layer=layers, n_head=16, n_embd=c, vocab_size=vocab, block_size=positions, token_number_per_step=16,
                               hybrid=False, resolution=128, sequence_length=17)
    torch.save({"state_dict": sd, "hyper_parameters": {"args": args}, "epoch": 1}, path)


def warm(path):
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def timed(cmd, ckpt):
    warm(ckpt)
    subprocess.run(["sync"], check=True)
    start = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    ckpt = os.path.join(OUT, "k600.ckpt")
    if not os.path.exists(ckpt):
        make_checkpoint(ckpt)
    cs, py = os.path.join(OUT, "k600-csharp.safetensors"), os.path.join(OUT, "k600-python.safetensors")
    t_cs = timed([args.exe, "convert", ckpt, cs], ckpt)
    t_py = timed([sys.executable, os.path.join(ROOT, "tools", "reference", "convert_checkpoint.py"), ckpt, py], ckpt)
    same = filecmp.cmp(cs, py, shallow=False)
    gb = os.path.getsize(ckpt) / 1e9
    print("| converter | seconds | GB/s | output |")
    print("|---|---|---|---|")
    print(f"| nbp-run convert (C#) | {t_cs:.2f} | {gb / t_cs:.2f} | {'identical' if same else 'DIFFERENT'} |")
    print(f"| reference (Python, torch.load) | {t_py:.2f} | {gb / t_py:.2f} | |")
    print(f"C# / Python time: {t_cs / t_py:.2f} ({t_py / t_cs:.2f}x faster); checkpoint {gb:.2f} GB")
    os.remove(cs)
    os.remove(py)


if __name__ == "__main__":
    main()
