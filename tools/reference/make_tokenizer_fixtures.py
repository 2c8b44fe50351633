#!/usr/bin/python3
"""Narrow tokenizer fixtures for the C# tokenizer tests (same layer list, widths 32/32/64, 32x32 frames).
Weights are stored as F16 (8.5 MB instead of 17) and the reference runs on exactly those rounded values.

    /usr/bin/python3 tools/reference/make_tokenizer_fixtures.py      # writes tests/fixtures/tokenizer_*
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
from tokenizer_model import Tokenizer  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")
WIDTHS = {512: 32, 256: 32, 128: 64}  # 128-stage wider: width-changing residual units in both halves
FRAMES, SIZE = 17, 32


def main():
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    model = Tokenizer(WIDTHS).eval()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("beta"):
                p.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
            elif "fn.0" in name or "fn.3" in name or name.startswith(("decoder_layers.27", "encoder_layers.24")):
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(torch.from_numpy((base + 0.2 * rng.standard_normal(p.shape)).astype(np.float32)))
            elif name.endswith("bias"):
                p.copy_(torch.from_numpy((0.05 * rng.standard_normal(p.shape)).astype(np.float32)))
            else:  # conv weights: fan-in scaled so activations stay O(1) through 30 layers
                fan_in = np.prod(p.shape[1:])
                p.copy_(torch.from_numpy((rng.standard_normal(p.shape) / np.sqrt(fan_in)).astype(np.float32)))
        # the encoder's last conv is scaled up so the 6 latent channels spread over the FSQ levels
        model.encoder_layers[26].weight.mul_(4.0)
        for p in model.parameters():  # the file stores F16: compute with exactly those values
            p.copy_(p.half().float())
        # a smooth moving pattern, like video
        t, y, x = np.meshgrid(np.arange(FRAMES), np.arange(SIZE), np.arange(SIZE), indexing="ij")
        video = np.stack([0.5 + 0.4 * np.sin(0.3 * x + 0.2 * t + c) * np.cos(0.25 * y - 0.1 * t * c) for c in range(3)])
        video = torch.from_numpy(video.astype(np.float32))[None]
        index, bounded = model.encode(video)
        decoded = model.decode(index)
    tensors = {k: v.half().numpy() for k, v in model.state_dict().items()}
    safetensors_io.save(os.path.join(OUT, "tokenizer_model.safetensors"), tensors, {"levels": "8,8,8,5,5,5"})
    np.save(os.path.join(OUT, "tokenizer_video.npy"), video[0].numpy())            # [3, 17, 32, 32]
    np.save(os.path.join(OUT, "tokenizer_codes.npy"), index[0].numpy().astype(np.int32))  # [5, 4, 4]
    np.save(os.path.join(OUT, "tokenizer_bounded.npy"), bounded[0].numpy())        # [6, 5, 4, 4] pre-rounding
    np.save(os.path.join(OUT, "tokenizer_decoded.npy"), decoded[0].numpy())        # [3, 17, 32, 32]
    distance = (bounded - bounded.round()).abs().max().item()
    print(f"codes {list(index.shape)}, {len(torch.unique(index))} distinct; decoded {list(decoded.shape)} "
          f"range [{decoded.min():.3f}, {decoded.max():.3f}], mean {decoded.mean():.3f}; max |bounded - round| {distance:.3f}")
    with open(os.path.join(OUT, "tokenizer_fixtures.json"), "w") as f:
        json.dump({"widths": {str(k): v for k, v in WIDTHS.items()}, "frames": FRAMES, "size": SIZE,
                   "regenerate": "/usr/bin/python3 tools/reference/make_tokenizer_fixtures.py", "torch": torch.__version__}, f, indent=2)


if __name__ == "__main__":
    main()
