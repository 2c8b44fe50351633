#!/usr/bin/python3
"""The K600 pipeline in the PyTorch reference (tools/reference), timed phase by phase for nbp-bench.

nbp-bench --torch runs this after its own sweep, on the same weight files, and prints both tables side by
side. It can also run alone:

    /usr/bin/python3 bench/torch_pipeline.py --weights W --tokenizer T --heads 16 --widths 512,256,128 \
        --blocks 1,16 --json out.json

Same workload as nbp-bench: 5 synthetic conditioning frames (the same formula) encoded to 512 prompt
tokens, 768 tokens generated per block size (frame mode, top-k 16000, top-p 0.9), 17 frames decoded from
the block-16 (or first) run. PyTorch as users run it: OpenBLAS, torch.set_num_threads(--threads).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools", "reference"))
import nbp_model as ref  # noqa: E402
import safetensors_io  # noqa: E402
from tokenizer_model import Tokenizer  # noqa: E402

NEW, TOP_K, TOP_P = 768, 16000, 0.9


def conditioning_frames():
    """[1, 3, 5, 128, 128]: nbp-bench's moving pattern."""
    c, t, y, x = np.meshgrid(np.arange(3), np.arange(5), np.arange(128), np.arange(128), indexing="ij")
    frames = 0.5 + 0.4 * np.sin(0.1 * x + 0.3 * t + c) * np.cos(0.08 * y - 0.2 * t)
    return torch.from_numpy(frames.astype(np.float32))[None]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--widths", required=True, help="tokenizer widths a,b,c (512,256,128 for the published one)")
    ap.add_argument("--blocks", default="1,8,16,32,64,256")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    blocks = [int(b) for b in args.blocks.split(",")]

    a, b, c = (int(w) for w in args.widths.split(","))
    tokenizer = Tokenizer({512: a, 256: b, 128: c}).eval()
    state, _ = safetensors_io.load(args.tokenizer)
    tokenizer.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    del state
    tensors, _ = safetensors_io.load(args.weights)
    cfg = ref.load_state(tensors, args.heads, 16)
    model = ref.NbpTransformer(cfg, tensors)
    del tensors

    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": []}
    with torch.no_grad():
        start = time.perf_counter()
        codes, _ = tokenizer.encode(conditioning_frames())
        result["encode"] = time.perf_counter() - start
        prompt = codes.flatten().clamp(max=cfg.vocab - 1).tolist()
        decode_ids = None
        for block in blocks:
            marks = []
            gen = torch.Generator().manual_seed(1)
            start = time.perf_counter()
            out, _ = ref.generate(model, prompt, "frame", block, NEW // block, greedy=False, top_k=TOP_K, top_p=TOP_P,
                                  generator=gen, on_step=lambda s: marks.append(time.perf_counter()))
            total = time.perf_counter() - start
            result["rows"].append({"block": block, "steps": NEW // block, "prefill": marks[0] - start, "step_seconds": total - (marks[0] - start)})
            print(f"torch_pipeline: B = {block}: prefill {marks[0] - start:.2f} s, steps {total - (marks[0] - start):.2f} s", file=sys.stderr, flush=True)
            if block == 16 or decode_ids is None:
                decode_ids = prompt + out
        start = time.perf_counter()
        tokenizer.decode(torch.tensor(decode_ids, dtype=torch.long).clamp(0, 63999).view(1, 5, 16, 16))
        result["decode"] = time.perf_counter() - start
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
