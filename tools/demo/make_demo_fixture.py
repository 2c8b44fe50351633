#!/usr/bin/python3
"""The trained demo's PyTorch reference for the suite (issue 18 item 7): for a few clips of a seed neither model was
trained on, the first 5 frames, the codes the reference tokenizer gives them, and the reference transformer's greedy
continuation (12 frames = 3 latent frames), all computed from the shipped files weights/demo/demo-*.safetensors (their
fp16 values, in fp32 arithmetic, as the engine computes).

    /usr/bin/python3 tools/demo/make_demo_fixture.py    # weights/demo/ -> tests/fixtures/demo/clip_i/*.png, demo_greedy.json

Also records how close each decision was (the smallest top-2 logit gap of greedy, the smallest distance of an FSQ
value from a rounding boundary), so a failing comparison can be told apart from a near-tie.
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import clips  # noqa: E402
import nbp_model as ref  # noqa: E402
import safetensors_io  # noqa: E402
from make_fixtures import min_gap_of  # noqa: E402
from tokenizer_files import load_tokenizer  # noqa: E402

SEED, CLIPS, CONDITIONING = 4242, 3, 5


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=os.path.join(ROOT, "weights", "demo"), help="folder with demo-nbp/demo-tokenizer.safetensors")
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "demo"))
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count())
    nbp, meta = safetensors_io.load(os.path.join(args.weights, "demo-nbp.safetensors"))
    tokenizer = load_tokenizer(os.path.join(args.weights, "demo-tokenizer.safetensors"))[0]
    block, resolution = int(meta["token_number_per_step"]), int(meta["resolution"])
    model = ref.NbpTransformer(ref.load_state(nbp, int(meta["n_head"]), block), nbp)
    latent_tokens = (resolution // 8) ** 2
    steps = 3 * latent_tokens // block
    out = args.out
    os.makedirs(out, exist_ok=True)
    cases = []
    for index in range(CLIPS):
        clip = clips.clip(SEED, index, resolution)[:CONDITIONING]
        os.makedirs(os.path.join(out, f"clip_{index}"), exist_ok=True)
        for t, frame in enumerate(clip):  # PNG frames: the engine reads them as a user's would be read
            clips.write_png(os.path.join(out, f"clip_{index}", f"frame_{t:03d}.png"), frame)
        with torch.no_grad():
            codes, bounded = tokenizer.encode(torch.from_numpy(clip).permute(3, 0, 1, 2)[None].float() / 255)
        prompt = codes[0].reshape(-1).tolist()
        fsq_margin = float((0.5 - (bounded - bounded.round()).abs()).min())
        tokens, gap = min_gap_of(model, prompt, "frame", block, steps, 0)
        cases.append({"clip": [SEED, index], "prompt": prompt, "greedy": tokens, "min_gap": gap, "fsq_margin": fsq_margin})
        print(f"clip {index}: {len(prompt)} prompt codes, {len(tokens)} greedy tokens, min top-2 gap {gap:.4f}, "
              f"FSQ margin {fsq_margin:.4f}")
    with open(os.path.join(out, "demo_greedy.json"), "w") as f:
        json.dump({"source": "tools/demo/make_demo_fixture.py", "block": block, "steps": steps, "cases": cases}, f)


if __name__ == "__main__":
    main()
