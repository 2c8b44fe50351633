#!/usr/bin/python3
"""The README's example clip and its comparison picture (issue 18 item 6).

    /usr/bin/python3 tools/demo/make_example.py                       # weights/demo/example/frame_000..004.png
    /usr/bin/python3 tools/demo/make_example.py --compare PRED.frames  # weights/demo/example-compare.png

The example is clip 0 of seed 2027 (neither model was trained on that seed), its first 5 frames. --compare takes the
17 PNG frames `nbp-run ... --output PRED.gif` wrote into PRED.gif.frames/ and draws two rows: the true clip (5 real
frames, then the 12 true ones), and the engine's video (5 real frames, then its 12 predicted ones), with a white
line after frame 5, scaled 3x.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clips  # noqa: E402

SEED, INDEX, CONDITIONING = 2027, 0, 5
DEMO = os.path.join(HERE, "..", "..", "weights", "demo")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--compare", help="the PNG frames folder of a prediction from the example")
    args = parser.parse_args()
    truth = clips.clip(SEED, INDEX, args.resolution)
    if not args.compare:
        folder = os.path.join(DEMO, "example")
        os.makedirs(folder, exist_ok=True)
        for t in range(CONDITIONING):
            clips.write_png(os.path.join(folder, f"frame_{t:03d}.png"), truth[t])
        return
    predicted = np.stack([np.asarray(Image.open(os.path.join(args.compare, f"frame_{t:03d}.png")).convert("RGB")) for t in range(len(truth))])
    predicted[:CONDITIONING] = truth[:CONDITIONING]  # the strip shows the real frames the engine was given
    rows = [np.concatenate(list(video), axis=1) for video in (truth, predicted)]
    picture = np.concatenate([rows[0], np.full((2, rows[0].shape[1], 3), 255, np.uint8), rows[1]], axis=0)
    picture[:, CONDITIONING * args.resolution - 1] = 255
    picture = np.repeat(np.repeat(picture, 3, axis=0), 3, axis=1)  # 3x, nearest: 32-pixel frames are too small to see
    clips.write_png(os.path.join(DEMO, "example-compare.png"), picture)


if __name__ == "__main__":
    main()
