#!/usr/bin/python3
"""Loads a demo tokenizer from either file it lives in: the training .pt (the official layout, train_tokenizer.py) or
the converted .safetensors that ships in weights/demo (`nbp-run convert`; fp16 values, computed in fp32 here)."""
import hashlib
import os
import pickle
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import safetensors_io  # noqa: E402
from tokenizer_model import Tokenizer  # noqa: E402


def widths_of(tensors):
    """The stage widths, read off the converted tensors' shapes (the .safetensors carries no config)."""
    return {128: tensors["encoder_layers.0.conv.weight"].shape[0], 256: tensors["encoder_layers.10.conv.weight"].shape[0],
            512: tensors["decoder_layers.0.conv.weight"].shape[0]}


def parse_levels(text):
    """"3,3,3,3,3,3" -> [3, 3, 3, 3, 3, 3] (the form of --levels and of the fsq_levels metadata)."""
    return [int(v) for v in text.split(",")]


def load_tokenizer(path, levels=None):
    """(model in eval mode, widths) from a .pt or a .safetensors. The FSQ levels are the file's (the .pt's config, the
    .safetensors' fsq_levels metadata; TOKENIZER.md's when it names none) unless `levels` re-quantises the encoder."""
    if path.endswith(".safetensors"):
        tensors, meta = safetensors_io.load(path)
        widths = widths_of(tensors)
        state = {k: torch.from_numpy(v.astype("float32")) for k, v in tensors.items()}
        own_levels = parse_levels(meta["fsq_levels"]) if "fsq_levels" in meta else None
    else:
        saved = torch.load(path)
        config = pickle.loads(saved["config"])  # written by train_tokenizer.py (our own bytes)
        widths, own_levels = config["widths"], config.get("levels")
        state = {k[len("module."):]: v for k, v in saved["model_state_dict"].items()}
    model = Tokenizer(widths, levels or own_levels)
    model.load_state_dict(state)
    return model.eval(), widths


def code_source(model):
    """What a clip's codes depend on: the encoder's weights and the FSQ levels (not the decoder, which a second phase
    trains on). A token cache is stamped with its sha256, so a decoder fine-tune does not invalidate it."""
    return state_digest(model.encoder_layers.state_dict(), salt=repr(model.levels))


def state_digest(state, salt=""):
    """sha256 (hex) of salt and a state dict's names and fp32 values: what a cache of outputs of those weights is stamped with."""
    digest = hashlib.sha256(salt.encode())
    for name, value in sorted(state.items()):
        digest.update(name.encode())
        digest.update(value.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()
