#!/usr/bin/python3
"""Loads a demo tokenizer from either file it lives in: the training .pt (the official layout, train_tokenizer.py) or
the converted .safetensors that ships in weights/demo (`nbp-run convert`; fp16 values, computed in fp32 here)."""
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


def load_tokenizer(path):
    """(model in eval mode, widths) from a .pt or a .safetensors."""
    if path.endswith(".safetensors"):
        tensors = safetensors_io.load(path)[0]
        widths = widths_of(tensors)
        state = {k: torch.from_numpy(v.astype("float32")) for k, v in tensors.items()}
    else:
        saved = torch.load(path)
        widths = pickle.loads(saved["config"])["widths"]  # written by train_tokenizer.py (our own bytes)
        state = {k[len("module."):]: v for k, v in saved["model_state_dict"].items()}
    model = Tokenizer(widths)
    model.load_state_dict(state)
    return model.eval(), widths
