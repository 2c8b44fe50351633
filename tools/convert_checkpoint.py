#!/usr/bin/python3
"""Convert an NBP training checkpoint (.ckpt) or the MAGVIT-v2 tokenizer (.pt) to safetensors.

    /usr/bin/python3 tools/convert_checkpoint.py k600_base_nbp16.ckpt k600.safetensors
    /usr/bin/python3 tools/convert_checkpoint.py magvit2_k600.pt magvit2_k600.safetensors
    options: --dtype f32|f16|bf16 (default f32)  --no-tokenizer (drop first_stage_model.*)  --n-head N ...

Handles a Lightning dict (state_dict + hyper_parameters), a flat state dict, DeepSpeed-consolidated
files, and 'module.' prefixes. The training hyper-parameters are written to __metadata__ as strings
under their own names (MODEL.md §2). Unpickling is restricted: classes that are not importable
here (omegaconf, the training code's own) become inert stubs instead of failing or running code.
"""
import argparse
import os
import pickle
import sys
import types

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import safetensors_io  # noqa: E402

META_KEYS = ["n_layer", "n_head", "n_embd", "vocab_size", "block_size", "token_number_per_step", "semi_ar", "hybrid",
             "starts_with_bov", "unconditional", "cond_stage_key", "class_cond_dim", "cond_token_num", "resolution",
             "sequence_length"]
SAFE_MODULES = ("torch", "collections", "numpy", "argparse", "builtins", "_codecs")


class _Stub:
    """Stands in for a class we will not import; keeps its state as a plain dict."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.__dict__["state"] = state


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.split(".")[0] in SAFE_MODULES:
            return super().find_class(module, name)
        return type(name, (_Stub,), {"__module__": module})


def restricted_load(path):
    """torch.load with _RestrictedUnpickler. Debian's torch 1.13 replaces a pickle_module argument with
    pickle itself, so the module its loader sees is swapped for the duration of the call instead."""
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source")
    ap.add_argument("destination")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--no-tokenizer", action="store_true", help="drop first_stage_model.* tensors")
    for key in META_KEYS:
        ap.add_argument("--" + key.replace("_", "-"), dest=key, help=f"set __metadata__ {key}")
    args = ap.parse_args()

    ckpt = restricted_load(args.source)
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
    tensors = {}
    for key, value in state.items():
        if not torch.is_tensor(value):
            continue
        name = key[len("module."):] if key.startswith("module.") else key
        if args.no_tokenizer and name.startswith("first_stage_model."):
            continue
        if name in tensors:
            raise SystemExit(f"{args.source}: key {name} appears twice (with and without 'module.')")
        tensors[name] = to_numpy(value, args.dtype)
    metadata = {k: v for k, v in hyper.items() if k in META_KEYS + ["tokenizer_version"] and v is not None}
    for key in META_KEYS:
        if getattr(args, key) is not None:
            metadata[key] = getattr(args, key)
    if "transformer.tok_emb.weight" in tensors and "n_head" not in metadata:
        print("warning: n_head not found in the checkpoint; pass --n-head (it cannot be derived from shapes)", file=sys.stderr)
    metadata = {k: str(v) for k, v in metadata.items()}
    safetensors_io.save(args.destination, tensors, metadata)
    print(f"{args.destination}: {len(tensors)} tensors, {args.dtype}, metadata {metadata}")


if __name__ == "__main__":
    main()
