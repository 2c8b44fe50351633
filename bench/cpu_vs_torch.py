#!/usr/bin/python3
"""K600-shaped generation on the CPU: nbp-run (C#) vs the PyTorch reference, same machine, same script.

    bash bench/cpu_vs_torch.sh            # installs what it needs, builds, runs this

Workload (issue 2): 24 layers, 16 heads, C = 1536, V = 64000, P = 5120, random fp32 weights,
512-token prompt, 768 new tokens, top-k 16000, top-p 0.9, with B = 16 (NBP, 48 steps) and B = 1
(NTP, 768 steps). The PyTorch side is what users of the published code get: K/V kept as a list and
concatenated every step, top-k then top-p with a full sort (tools/reference/nbp_model.py), OpenBLAS
and torch.set_num_threads(os.cpu_count()).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
import nbp_model as ref  # noqa: E402
import safetensors_io  # noqa: E402

LAYERS, HEADS, C, V, P = 24, 16, 1536, 64000, 5120
PROMPT, NEW = 512, 768
TOP_K, TOP_P = 16000, 0.9


def make_checkpoint(path):
    if os.path.exists(path):
        return
    print(f"writing random K600-shaped checkpoint {path} (3.5 GB) ...", flush=True)
    rng = np.random.default_rng(0)

    def normal(*shape, std=0.02):
        a = rng.standard_normal(shape, dtype=np.float32)
        a *= std
        return a

    t = {"transformer.tok_emb.weight": normal(V, C), "transformer.pos_emb": normal(1, P, C)}
    for i in range(LAYERS):
        b = f"transformer.blocks.{i}."
        t[b + "ln1.weight"] = 1 + normal(C, std=0.1)
        t[b + "ln1.bias"] = normal(C)
        for n in ("query", "key", "value", "proj"):
            t[b + f"attn.{n}.weight"] = normal(C, C)
            t[b + f"attn.{n}.bias"] = normal(C)
        t[b + "ln2.weight"] = 1 + normal(C, std=0.1)
        t[b + "ln2.bias"] = normal(C)
        t[b + "mlp.0.weight"] = normal(4 * C, C)
        t[b + "mlp.0.bias"] = normal(4 * C)
        t[b + "mlp.2.weight"] = normal(C, 4 * C)
        t[b + "mlp.2.bias"] = normal(C)
    t["transformer.ln_f.weight"] = 1 + normal(C, std=0.1)
    t["transformer.ln_f.bias"] = normal(C)
    t["transformer.head.weight"] = normal(V, C, std=0.5)
    meta = {"n_layer": LAYERS, "n_head": HEADS, "n_embd": C, "vocab_size": V, "block_size": P,
            "token_number_per_step": 16, "hybrid": "false", "resolution": 128, "sequence_length": 17}
    safetensors_io.save(path + ".tmp", t, meta)
    os.replace(path + ".tmp", path)


def run_engine(exe, weights, prompt_file, block, out_dir, threads):
    steps = NEW // block
    stats = os.path.join(out_dir, f"engine_b{block}.json")
    cmd = [exe, "--weights", weights, "--prompt-tokens", prompt_file, "--tokens-out", os.path.join(out_dir, f"engine_b{block}.txt"),
           "--block-size", str(block), "--steps", str(steps), "--top-k", str(TOP_K), "--top-p", str(TOP_P), "--seed", "1",
           "--threads", str(threads), "--quiet", "--stats-json", stats]
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    with open(stats) as f:
        s = json.load(f)
    return {"prefill": s["prefill_seconds"], "steps": s["step_seconds"], "total": s["total_seconds"], "n_steps": s["steps"]}


def run_torch(model, prompt, block):
    steps = NEW // block
    marks = []
    gen = torch.Generator().manual_seed(1)
    start = time.perf_counter()
    with torch.no_grad():
        ref.generate(model, prompt, "frame", block, steps, greedy=False, top_k=TOP_K, top_p=TOP_P, generator=gen,
                     on_step=lambda s: marks.append(time.perf_counter()))
    total = time.perf_counter() - start
    prefill = marks[0] - start
    return {"prefill": prefill, "steps": total - prefill, "total": total, "n_steps": steps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True, help="path of the built nbp-run")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--blocks", default="16,1", help="block sizes to run (16 = NBP, 1 = NTP)")
    ap.add_argument("--skip-torch", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    weights = os.path.join(args.out, "k600-random.safetensors")
    make_checkpoint(weights)
    prompt = np.random.default_rng(1).integers(0, V, PROMPT).tolist()
    prompt_file = os.path.join(args.out, "prompt.txt")
    with open(prompt_file, "w") as f:
        f.write(" ".join(map(str, prompt)) + "\n")

    blocks = [int(b) for b in args.blocks.split(",")]
    results = {}
    for block in blocks:
        results[("nbp-run (C#)", block)] = run_engine(args.exe, weights, prompt_file, block, args.out, threads)
        print(f"nbp-run B={block}: {results[('nbp-run (C#)', block)]}", flush=True)
    if not args.skip_torch:
        tensors, _ = safetensors_io.load(weights)
        cfg = ref.load_state(tensors, HEADS, 16)
        model = ref.NbpTransformer(cfg, tensors)
        del tensors
        for block in blocks:
            results[("PyTorch reference", block)] = run_torch(model, prompt, block)
            print(f"PyTorch B={block}: {results[('PyTorch reference', block)]}", flush=True)

    lines = [f"K600-shaped CPU generation, {datetime.date.today()}, {platform.node()} ({threads} cores, "
             f"{platform.processor() or platform.machine()}), torch {torch.__version__} with {torch.get_num_threads()} threads",
             "", "| implementation | B | steps | prefill s | steps s | total s | new tokens/s | NBP/NTP speedup | time vs PyTorch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (impl, block), r in results.items():
        ntp = results.get((impl, 1))
        speedup = f"{ntp['total'] / r['total']:.2f}x" if ntp and block != 1 else "-"
        torch_r = results.get(("PyTorch reference", block))
        vs = f"{torch_r['total'] / r['total']:.2f}x faster" if torch_r and impl != "PyTorch reference" else "-"
        lines.append(f"| {impl} | {block} | {r['n_steps']} | {r['prefill']:.2f} | {r['steps']:.2f} | {r['total']:.2f} | "
                     f"{NEW / r['total']:.1f} | {speedup} | {vs} |")
    table = "\n".join(lines)
    print("\n" + table)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
