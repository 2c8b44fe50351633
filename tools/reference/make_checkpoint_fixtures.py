#!/usr/bin/python3
"""Makes training-style checkpoints and what the reference converter writes from them, for the tests of
`nbp-run convert` (tests/fixtures/checkpoints/):

    /usr/bin/python3 tools/reference/make_checkpoint_fixtures.py

- lightning_frame.ckpt: a PyTorch Lightning checkpoint around the frame fixture model
  (state_dict with `_metadata`, hyper_parameters holding an argparse.Namespace inside a dict, optimizer
  states, callbacks, loops); block 0's query/key/value share one storage (views with storage offsets),
  mlp.0.weight is a transposed (non-contiguous) view, a Parameter, and two small first_stage_model.* tensors.
- deepspeed_hybrid.pt: a DeepSpeed model-states dict ({'module': state with 'module.' prefixes, ...})
  around the hybrid fixture model; no hyper-parameters, so conversion passes them as overrides.
- tokenizer.pt: the tokenizer .pt layout ({'model_state_dict': 'module.'-prefixed, 'version', 'config':
  pickled bytes}) around the narrow fixture tokenizer.
- dtypes.pt: a flat state dict of float32/float16/bfloat16/int64 storages, 0-d and empty tensors, strided
  views into a shared storage, and values that round (f16 overflow, subnormals, NaN, bf16 ties).
Expected outputs: tools/reference/convert_checkpoint.py on each (cases in checkpoints.json: the SHA-256 of every
expected file, and the file itself where it is small).
"""
import argparse
import collections
import hashlib
import json
import os
import pickle
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_checkpoint  # noqa: E402
import safetensors_io  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(FIXTURES, "checkpoints")


def tensors_of(name):
    tensors, metadata = safetensors_io.load(os.path.join(FIXTURES, name))
    return {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, metadata


def lightning_frame():
    tensors, meta = tensors_of("frame_model.safetensors")
    state = collections.OrderedDict()
    c = tensors["transformer.blocks.0.attn.query.weight"].shape[0]
    # query/key/value of block 0 as views of one [3C, C] storage (storage offsets 0, C*C, 2*C*C)
    qkv = torch.cat([tensors[f"transformer.blocks.0.attn.{n}.weight"] for n in ("query", "key", "value")])
    for i, n in enumerate(("query", "key", "value")):
        tensors[f"transformer.blocks.0.attn.{n}.weight"] = qkv[i * c:(i + 1) * c]
    # a transposed view: strides (1, rows), not contiguous
    w = tensors["transformer.blocks.1.mlp.0.weight"]
    tensors["transformer.blocks.1.mlp.0.weight"] = w.t().contiguous().t()
    assert not tensors["transformer.blocks.1.mlp.0.weight"].is_contiguous()
    for k, v in tensors.items():
        state[k] = v
    state["transformer.head.weight"] = torch.nn.Parameter(state["transformer.head.weight"], requires_grad=False)
    state["first_stage_model.decoder_layers.0.conv.bias"] = torch.linspace(-1, 1, 8)
    state["first_stage_model.encoder_layers.26.bias"] = torch.arange(6, dtype=torch.float32)
    state._metadata = collections.OrderedDict([("", {"version": 1}), ("transformer", {"version": 1})])
    args = argparse.Namespace(
        n_layer=int(meta["n_layer"]), n_head=int(meta["n_head"]), n_embd=int(meta["n_embd"]), vocab_size=int(meta["vocab_size"]),
        block_size=int(meta["block_size"]), token_number_per_step=16, semi_ar=True, hybrid=False, starts_with_bov=False,
        unconditional=True, cond_stage_key="label", class_cond_dim=None, cond_token_num=0, resolution=64, sequence_length=17,
        base_learning_rate=4.5e-06, weight_decay=0.01, betas=(0.9, 0.95), log_dir="logs/k600", devices=[0, 1],
        tokenizer=argparse.Namespace(n_head=99, embed_dim=6, levels=[8, 8, 8, 5, 5, 5]))  # nested: the outer n_head wins
    head = state["transformer.tok_emb.weight"]
    return {
        "epoch": 3, "global_step": 1234, "pytorch-lightning_version": "1.9.4",
        "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4, "completed": 3}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val/loss', 'mode': 'min'}": {
            "best_model_score": torch.tensor(3.25), "best_model_path": "ckpt/best.ckpt", "kth_value": torch.tensor(float("inf"))}},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(1234.0), "exp_avg": torch.zeros_like(head), "exp_avg_sq": torch.ones_like(head)}},
                              "param_groups": [{"lr": 4.5e-06, "betas": (0.9, 0.95), "eps": 1e-08, "weight_decay": 0.01, "amsgrad": False, "params": [0]}]}],
        "lr_schedulers": [],
        "hparams_name": "args",
        "hyper_parameters": {"args": args, "learning_rate": 4.5e-06, "ignored_list": [1, 2, 3]},
    }


def deepspeed_hybrid():
    tensors, _ = tensors_of("hybrid_model.safetensors")
    module = collections.OrderedDict(("module." + k, v) for k, v in tensors.items())
    return {"module": module, "buffer_names": [], "optimizer": None, "lr_scheduler": None, "ds_config": {"bf16": {"enabled": True}},
            "ds_version": "0.9.5", "global_steps": 100, "dp_world_size": 8, "mp_world_size": 1}


def tokenizer():
    tensors, _ = tensors_of("tokenizer_model.safetensors")  # stored as F16 there: keep F16 storages (half the size)
    state = collections.OrderedDict(("module." + k, v.to(torch.float16)) for k, v in tensors.items())
    config = pickle.dumps({"levels": [8, 8, 8, 5, 5, 5], "channels": 16, "note": "pickled bytes, never unpickled"}, protocol=2)
    return {"model_state_dict": state, "version": "1.0", "config": config}


def dtypes():
    shared = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    special = torch.tensor([0.0, -0.0, 1.0 / 3, 65504.0, 65520.0, 70000.0, -1e30, 1e-8, 6e-5, 1e-40,
                            float("inf"), float("-inf"), float("nan"), 1.00390625, 1.01171875, 3.0e38], dtype=torch.float32)
    return collections.OrderedDict([
        ("f32", torch.linspace(-2, 2, 12).reshape(3, 4)),
        ("special", special),
        ("f16", (torch.linspace(-3, 3, 10)).to(torch.float16)),
        ("bf16", (torch.linspace(-3, 3, 10) + 0.001).to(torch.bfloat16)),
        ("i64", torch.tensor([[0, 1, -5], [16777217, 2 ** 40 + 1, -(2 ** 62)]], dtype=torch.int64)),
        ("scalar", torch.tensor(2.5)),
        ("empty", torch.zeros(0, 3)),
        ("view.column", shared[:, 2]),  # storage offset 2, stride 6
        ("view.transposed_slice", shared[1:3, 1:5].t()),  # offset 7, strides (1, 6)
        ("view.whole", shared),
        ("f16.view", torch.linspace(0, 1, 16).to(torch.float16).reshape(4, 4)[::2, 1::2]),
    ])


CASES = [
    # name, source, dtype, no_tokenizer, overrides
    ("lightning_frame", "lightning_frame.ckpt", "f32", False, {}),
    ("lightning_frame_no_tokenizer", "lightning_frame.ckpt", "f32", True, {}),
    ("deepspeed_hybrid", "deepspeed_hybrid.pt", "f32", False,
     {"n_head": "4", "hybrid": "True", "token_number_per_step": "4", "cond_token_num": "5", "resolution": "32", "sequence_length": "5",
      "vocab_size": "300", "block_size": "64"}),
    ("tokenizer", "tokenizer.pt", "f16", False, {}),
    ("dtypes_f32", "dtypes.pt", "f32", False, {}),
    ("dtypes_f16", "dtypes.pt", "f16", False, {"resolution": "8"}),
    ("dtypes_bf16", "dtypes.pt", "bf16", False, {}),
]


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    torch.save(lightning_frame(), os.path.join(OUT, "lightning_frame.ckpt"))
    torch.save(deepspeed_hybrid(), os.path.join(OUT, "deepspeed_hybrid.pt"))
    torch.save(tokenizer(), os.path.join(OUT, "tokenizer.pt"))
    torch.save(dtypes(), os.path.join(OUT, "dtypes.pt"))
    cases = {}
    for name, source, dtype, no_tokenizer, overrides in CASES:
        expected = os.path.join(OUT, name + ".expected.safetensors")
        _, metadata = convert_checkpoint.convert(os.path.join(OUT, source), expected, dtype, no_tokenizer, overrides)
        with open(expected, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if os.path.getsize(expected) > 2_000_000:  # the tokenizer: its tensors equal tokenizer_model.safetensors; keep only the hash
            os.remove(expected)
        cases[name] = {"source": source, "dtype": dtype, "no_tokenizer": no_tokenizer, "overrides": overrides, "metadata": metadata,
                       "expected_sha256": digest}
    with open(os.path.join(OUT, "checkpoints.json"), "w") as f:
        json.dump({"regenerate": "/usr/bin/python3 tools/reference/make_checkpoint_fixtures.py", "torch": torch.__version__, "cases": cases}, f, indent=1)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
