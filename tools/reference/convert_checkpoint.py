#!/usr/bin/python3
"""The reference checkpoint converter: what `nbp-run convert` (C#) must write, byte for byte.

Users convert with `nbp-run convert` (weights/README.md). This script stays only to make the expected
outputs of the converter tests (tools/reference/make_checkpoint_fixtures.py) from checkpoints the
project made itself:

    /usr/bin/python3 tools/reference/convert_checkpoint.py SOURCE.ckpt DEST.safetensors [--dtype f16] ...

Handles a Lightning dict (state_dict + hyper_parameters), a flat state dict, DeepSpeed-consolidated
files, and 'module.' prefixes. The training hyper-parameters are written to __metadata__ as strings
under their own names (MODEL.md §2). Unpickling takes an explicit allow-list of (module, name) pairs,
the same as the C# reader's (src/Loader/TorchCheckpoint/CheckpointAllowList.cs); anything else is refused, and a
pre-1.6 (non-zip) file is refused before torch.load sees it, since torch unpickles those unrestricted.
"""
import argparse
import os
import pickle
import sys
import types
import zipfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

META_KEYS = ["n_layer", "n_head", "n_embd", "vocab_size", "block_size", "token_number_per_step", "semi_ar", "hybrid",
             "starts_with_bov", "unconditional", "cond_stage_key", "class_cond_dim", "cond_token_num", "resolution",
             "sequence_length", "fsq_levels"]  # fsq_levels: a tokenizer's FSQ levels, set only by --fsq-levels
# Exact (module, name) pairs; no module wildcards, no dotted names. Keep in step with CheckpointAllowList.cs.
ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch", "FloatStorage"), ("torch", "HalfStorage"), ("torch", "BFloat16Storage"), ("torch", "DoubleStorage"),
    ("torch", "LongStorage"), ("torch", "IntStorage"), ("torch", "ShortStorage"), ("torch", "CharStorage"),
    ("torch", "ByteStorage"), ("torch", "BoolStorage"),
    ("collections", "OrderedDict"), ("argparse", "Namespace"), ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not on the allow-list")


def restricted_load(path):
    """torch.load with _RestrictedUnpickler. Debian's torch 1.13 replaces a pickle_module argument with
    pickle itself, so the module its loader sees is swapped for the duration of the call instead.
    Only zip files: torch's legacy loader unpickles with pickle.load, which no Unpickler subclass guards."""
    if not zipfile.is_zipfile(path):
        raise SystemExit(f"{path}: not a zip checkpoint (pre-1.6 PyTorch format); refused, it cannot be read safely")
    restricted = types.ModuleType("restricted_pickle")
    restricted.__dict__.update(pickle.__dict__)
    restricted.Unpickler = _RestrictedUnpickler
    original = torch.serialization.pickle
    torch.serialization.pickle = restricted
    try:
        return torch.load(path, map_location="cpu")
    finally:
        torch.serialization.pickle = original


def flatten(obj, out, depth=0):
    """Collects scalar hyper-parameters from nested dicts, Namespaces and stubs."""
    if depth > 6:
        return
    if isinstance(obj, dict):
        items = obj.items()
    elif hasattr(obj, "__dict__"):
        items = vars(obj).items()
    else:
        return
    for k, v in items:
        if isinstance(v, (bool, int, float, str)) or v is None:
            out.setdefault(str(k), v)
        else:
            flatten(v, out, depth + 1)


def to_numpy(t, dtype):
    t = t.detach().to("cpu")
    if dtype == "f16":
        return t.to(torch.float16).numpy()
    if dtype == "bf16":
        return ("BF16", t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16))
    return t.to(torch.float32).numpy()


def convert(source, destination, dtype="f32", no_tokenizer=False, overrides=None):
    """Writes DESTINATION from SOURCE; overrides: metadata key -> value (strings, as on the command line)."""
    ckpt = restricted_load(source)
    hyper = {}
    if isinstance(ckpt, dict) and "state_dict" in ckpt:
        state = ckpt["state_dict"]
        flatten(ckpt.get("hyper_parameters", {}), hyper)
    elif isinstance(ckpt, dict) and "model_state_dict" in ckpt:  # the tokenizer .pt
        state = ckpt["model_state_dict"]
        hyper["tokenizer_version"] = ckpt.get("version")
    elif isinstance(ckpt, dict) and "module" in ckpt and isinstance(ckpt["module"], dict):  # DeepSpeed
        state = ckpt["module"]
    else:
        state = ckpt
    if not any(torch.is_tensor(v) for v in state.values()):
        raise SystemExit(f"{source}: no tensors found")
    tensors = {}
    for key, value in state.items():
        if not torch.is_tensor(value):
            continue
        name = key[len("module."):] if key.startswith("module.") else key
        if no_tokenizer and name.startswith("first_stage_model."):
            continue
        if name in tensors:
            raise SystemExit(f"{source}: key {name} appears twice (with and without 'module.')")
        tensors[name] = to_numpy(value, dtype)
    metadata = {k: v for k, v in hyper.items() if k in META_KEYS + ["tokenizer_version"] and v is not None}
    for key in META_KEYS:  # in META_KEYS order, as the command line applies them
        if key in (overrides or {}):
            metadata[key] = overrides[key]
    if "transformer.tok_emb.weight" in tensors and "n_head" not in metadata:
        print("warning: n_head not found in the checkpoint; pass --n-head (it cannot be derived from shapes)", file=sys.stderr)
    metadata = {k: str(v) for k, v in metadata.items()}
    safetensors_io.save(destination, tensors, metadata)
    return tensors, metadata


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source")
    ap.add_argument("destination")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--no-tokenizer", action="store_true", help="drop first_stage_model.* tensors")
    for key in META_KEYS:
        ap.add_argument("--" + key.replace("_", "-"), dest=key, help=f"set __metadata__ {key}")
    args = ap.parse_args()
    overrides = {k: getattr(args, k) for k in META_KEYS if getattr(args, k) is not None}
    tensors, metadata = convert(args.source, args.destination, args.dtype, args.no_tokenizer, overrides)
    print(f"{args.destination}: {len(tensors)} tensors, {args.dtype}, metadata {metadata}")


if __name__ == "__main__":
    main()
