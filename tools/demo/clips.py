#!/usr/bin/python3
"""Synthetic clips for the trained demo model (issue 18): coloured circles and squares moving over a dark background.

    /usr/bin/python3 tools/demo/clips.py --count 2000 --seed 1 --out /tmp/train.npy      # uint8 [N, 17, R, R, 3]
    /usr/bin/python3 tools/demo/clips.py --count 16 --seed 9001 --png /tmp/clips          # PNG folders, for a look

The contract (weights/demo/README.md states it; held-out checks draw their own clips from that text, not from this code):
17 RGB frames of side R; a uniform dark background, each channel an integer in [0, 40]; 1-3 objects, each a filled
circle or an axis-aligned square, one of six colours (255,0,0) (0,255,0) (0,0,255) (255,255,0) (0,255,255) (255,0,255),
size (diameter or side) in [0.12, 0.24]·R; each moves at a constant velocity, each component in [-4, 4]·R/64 px/frame
with speed >= R/64, and reflects off the frame edges; later objects are drawn over earlier ones; hard edges: a pixel
belongs to a shape when its centre does. Clip i of a seed depends only on (seed, i): numpy's default_rng([seed, i]).
"""
import argparse
import os
import zlib
import struct

import numpy as np

FRAMES = 17
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


def clip(seed, index, r=64):
    """One clip, uint8 [17, r, r, 3]."""
    rng = np.random.default_rng([seed, index])
    background = rng.integers(0, 41, size=3)
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        circle = bool(rng.integers(0, 2))
        colour = COLOURS[int(rng.integers(0, len(COLOURS)))]
        size = rng.uniform(0.12, 0.24) * r
        half = size / 2
        centre = rng.uniform(half, r - half, size=2)
        while True:  # each component in [-4, 4]·r/64, speed >= r/64
            velocity = rng.uniform(-4, 4, size=2) * r / 64
            if np.hypot(*velocity) >= r / 64:
                break
        objects.append([circle, colour, half, centre, velocity])
    ys, xs = np.mgrid[0:r, 0:r] + 0.5  # pixel centres
    out = np.empty((FRAMES, r, r, 3), np.uint8)
    for t in range(FRAMES):
        frame = np.empty((r, r, 3), np.uint8)
        frame[:] = background
        for circle, colour, half, centre, _ in objects:  # later objects over earlier ones
            dx, dy = xs - centre[0], ys - centre[1]
            inside = dx * dx + dy * dy <= half * half if circle else (np.abs(dx) <= half) & (np.abs(dy) <= half)
            frame[inside] = colour
        out[t] = frame
        for o in objects:  # move, reflecting off the edges: the shape stays inside the frame
            half, centre, velocity = o[2], o[3], o[4]
            centre += velocity
            for axis in range(2):
                if centre[axis] - half < 0:
                    centre[axis] = 2 * half - centre[axis]
                    velocity[axis] = -velocity[axis]
                elif centre[axis] + half > r:
                    centre[axis] = 2 * (r - half) - centre[axis]
                    velocity[axis] = -velocity[axis]
    return out


def write_png(path, rgb):
    """8-bit RGB PNG with the standard library only."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--first", type=int, default=0, help="index of the first clip")
    parser.add_argument("--out", help="write all clips as one uint8 .npy [N, 17, R, R, 3]")
    parser.add_argument("--png", help="write clip i's frames to FOLDER/clip_i/frame_000.png ...")
    args = parser.parse_args()
    if not args.out and not args.png:
        parser.error("give --out and/or --png")
    clips = np.stack([clip(args.seed, args.first + i, args.resolution) for i in range(args.count)])
    if args.out:
        np.save(args.out, clips)
    if args.png:
        for i, c in enumerate(clips):
            folder = os.path.join(args.png, f"clip_{args.first + i}")
            os.makedirs(folder, exist_ok=True)
            for t, frame in enumerate(c):
                write_png(os.path.join(folder, f"frame_{t:03d}.png"), frame)


if __name__ == "__main__":
    main()
