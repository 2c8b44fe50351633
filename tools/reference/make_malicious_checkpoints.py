#!/usr/bin/python3
"""Makes the malicious checkpoint corpus that `nbp-run convert` must refuse (tests/fixtures/malicious/):

    /usr/bin/python3 tools/reference/make_malicious_checkpoints.py

Every payload is harmless if it ever ran (it creates /tmp/nbp-pwned), and the tests also check that the
file does not appear. manifest.json maps each file to a fragment of the one-line error the C# reader must
give. Three families:
- code execution the way an attacker writes it with torch.save: objects whose __reduce__ names os/posix.system,
  builtins eval/exec/open/getattr/__import__, subprocess, callables of torch and numpy; in the state_dict, in
  hyper_parameters (inside an argparse.Namespace), nested in lists, in optimizer states; protocols 2 and 4;
  a legacy (pre-1.6, non-zip) torch.save file.
- hand-written pickles: protocol-4 dotted names through allowed or harmless modules (STACK_GLOBAL
  'torch.serialization' + 'os.system', 'argparse' + '_os.system', ...), GLOBAL with dotted names under PROTO 4,
  INST/OBJ (protocol 0 instantiation), NEWOBJ of a foreign class, allowed functions with bad arguments.
- structure: zip path traversal, compressed entries (zip bombs), storage sizes that do not match their entries,
  views past the end of their storage, size overflow, deep nesting, memo abuse, huge string lengths,
  truncated pickles, a file with no tensors.
"""
import argparse
import builtins
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile

import numpy
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "malicious")
MARKER = "/tmp/nbp-pwned"


class Evil:
    """Pickles as a call of `fn(*args)`."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def saved(obj, protocol=2, legacy=False):
    buffer = io.BytesIO()
    torch.save(obj, buffer, pickle_protocol=protocol, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def lightning(**extra):
    obj = {"state_dict": {"transformer.head.weight": torch.ones(2, 3)}, "hyper_parameters": {"n_head": 4}}
    obj.update(extra)
    return obj


# --- hand-written pickle pieces -----------------------------------------------------------------------
def uni(text):
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def short_uni(text):
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def stack_global(module, name):
    return short_uni(module) + short_uni(name) + b"\x93"


def call(fn, *args):
    """fn (already pushed bytes) applied to a tuple of string arguments."""
    return fn + b"(" + b"".join(uni(a) for a in args) + b"tR"


def state_dict_with(value, proto=2):
    """{'state_dict': {'w': value}} as a pickle of the given protocol."""
    return bytes([0x80, proto]) + b"}(" + uni("state_dict") + b"}(" + uni("w") + value + b"uu."


def persistent_storage(storage_type, key, numel):
    return b"(" + uni("storage") + glob("torch", storage_type) + uni(key) + uni("cpu") + b"J" + struct.pack("<i", numel) + b"tQ"


def rebuild(storage_pickle, offset, size, stride):
    def tup(values):
        return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"
    return (glob("torch._utils", "_rebuild_tensor_v2") + b"(" + storage_pickle + b"J" + struct.pack("<i", offset) + tup(size) + tup(stride)
            + b"\x89" + glob("collections", "OrderedDict") + b")R" + b"tR")


def torch_zip(pkl, storages=None, prefix="archive", compress_pickle=False, extra_entries=()):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr(zipfile.ZipInfo(prefix + "/data.pkl"), pkl, compress_type=zipfile.ZIP_DEFLATED if compress_pickle else zipfile.ZIP_STORED)
        for key, data in (storages or {}).items():
            z.writestr(zipfile.ZipInfo(prefix + "/data/" + key), data)
        z.writestr(zipfile.ZipInfo(prefix + "/version"), b"3\n")
        for name, data, method in extra_entries:
            z.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buffer.getvalue()


FLOATS4 = struct.pack("<4f", 1, 2, 3, 4)


def corpus():
    touch = "touch " + MARKER
    cases = {}
    # 1. what torch.save writes for objects that reduce to dangerous callables
    for proto in (2, 4):
        p = f"p{proto}"
        # protocol 2 writes Python 2 module names (fix_imports): builtins -> __builtin__, subprocess -> commands
        builtins_name, subprocess_name = ("__builtin__", "commands") if proto == 2 else ("builtins", "subprocess")
        cases[f"os_system_in_state_dict_{p}.ckpt"] = (saved(lightning(state_dict={"w": torch.ones(2), "x": Evil(os.system, touch)}), proto), "'posix.system'")
        cases[f"eval_in_namespace_{p}.ckpt"] = (saved(lightning(hyper_parameters={"args": argparse.Namespace(n_head=4, x=Evil(eval, f"__import__('os').system('{touch}')"))}), proto), f"'{builtins_name}.eval'")
        cases[f"exec_nested_in_lists_{p}.ckpt"] = (saved(lightning(loops=[[{"a": [Evil(exec, f"import os; os.system('{touch}')")]}]]), proto), f"'{builtins_name}.exec'")
        cases[f"subprocess_in_optimizer_{p}.ckpt"] = (saved(lightning(optimizer_states=[{"state": {0: Evil(subprocess.check_output, ["touch", MARKER])}}]), proto), f"'{subprocess_name}.check_output'")
    cases["open_as_tensor_value.ckpt"] = (saved(lightning(state_dict={"w": Evil(open, MARKER, "w")})), "'io.open'")
    cases["getattr_in_hyper.ckpt"] = (saved(lightning(hyper_parameters={"x": Evil(getattr, Evil(builtins.__import__, "os"), "system")})), "'__builtin__.getattr'")
    cases["import_in_callbacks.ckpt"] = (saved(lightning(callbacks={"cb": Evil(builtins.__import__, "os")})), "'__builtin__.__import__'")
    cases["posix_system_flat.pt"] = (saved({"module.w": torch.ones(2), "evil": Evil(os.system, touch)}), "'posix.system'")
    cases["torch_load.ckpt"] = (saved(lightning(hyper_parameters={"x": Evil(torch.load, MARKER)})), "'torch.serialization.load'")
    cases["torch_hub_load.ckpt"] = (saved(lightning(hyper_parameters={"x": Evil(torch.hub.load, "owner/repo", "model")})), "'torch.hub.load'")
    cases["numpy_load_allow_pickle.ckpt"] = (saved(lightning(hyper_parameters={"x": Evil(numpy.load, MARKER, None, True)})), "'numpy.load'")
    cases["legacy_non_zip.pt"] = (saved({"w": torch.ones(2), "x": Evil(os.system, touch)}, legacy=True), "not a zip")
    cases["legacy_non_zip_clean.pt"] = (saved({"w": torch.ones(2)}, legacy=True), "not a zip")

    # 2. hand-written pickles
    for module, name in [("torch.serialization", "os.system"), ("argparse", "_os.system"), ("numpy.lib.npyio", "os.system"),
                         ("numpy.f2py", "subprocess.check_output"), ("collections", "OrderedDict.__init__"), ("torch._utils", "_rebuild_tensor_v2.__globals__"),
                         ("builtins", "eval"), ("os", "system")]:
        cases[f"dotted_{module}_{name}.ckpt".replace("__", "_")] = (torch_zip(state_dict_with(call(stack_global(module, name), touch), proto=4)), f"'{module}.{name}'")
    cases["global_dotted_under_proto4.ckpt"] = (torch_zip(state_dict_with(call(glob("torch.serialization", "os.system"), touch), proto=4)), "'torch.serialization.os.system'")
    cases["inst_os_system.ckpt"] = (torch_zip(b"\x80\x02(" + uni(touch) + b"ios\nsystem\n."), "opcode 'i'")
    cases["obj_opcode.ckpt"] = (torch_zip(b"\x80\x02(" + glob("posix", "system") + uni(touch) + b"o."), "'posix.system'")
    cases["newobj_foreign_class.ckpt"] = (torch_zip(state_dict_with(glob("subprocess", "Popen") + b"(" + uni(touch) + b"t\x81")), "'subprocess.Popen'")
    cases["reduce_on_namespace_with_args.ckpt"] = (torch_zip(state_dict_with(call(glob("argparse", "Namespace"), touch))), "argparse.Namespace")
    cases["ordereddict_called_with_string.ckpt"] = (torch_zip(state_dict_with(call(glob("collections", "OrderedDict"), touch))), "collections.OrderedDict")
    cases["codecs_encode_other_codec.ckpt"] = (torch_zip(state_dict_with(call(glob("_codecs", "encode"), "x", "rot13"))), "_codecs.encode")
    cases["storage_class_called.ckpt"] = (torch_zip(state_dict_with(call(glob("torch", "FloatStorage"), touch))), "torch.FloatStorage")
    cases["persistent_id_not_storage.ckpt"] = (torch_zip(state_dict_with(b"(" + uni("module") + uni("os") + b"tQ")), "persistent id")

    # 3. structure
    tensor = rebuild(persistent_storage("FloatStorage", "0", 4), 0, [4], [1])
    valid = state_dict_with(tensor)
    cases["zip_path_traversal.ckpt"] = (torch_zip(valid, {"0": FLOATS4}, prefix="../../tmp"), "entry name")
    cases["zip_absolute_name.ckpt"] = (torch_zip(valid, {"0": FLOATS4}, extra_entries=[("/etc/passwd", b"x", zipfile.ZIP_STORED)]), "entry name")
    cases["zip_bomb_deflated_pickle.ckpt"] = (torch_zip(valid + b"\0" * 50_000_000, {"0": FLOATS4}, compress_pickle=True), "compressed")
    cases["zip_bomb_deflated_storage.ckpt"] = (torch_zip(valid, {"0": FLOATS4}, extra_entries=[("archive/data/1", b"\0" * 50_000_000, zipfile.ZIP_DEFLATED)]), "compressed")
    cases["zip_two_pickles.ckpt"] = (torch_zip(valid, {"0": FLOATS4}, extra_entries=[("other/data.pkl", valid, zipfile.ZIP_STORED)]), "data.pkl")
    cases["storage_numel_beyond_entry.ckpt"] = (torch_zip(state_dict_with(rebuild(persistent_storage("FloatStorage", "0", 1_000_000_000), 0, [4], [1])), {"0": FLOATS4}), "storage")
    cases["storage_missing.ckpt"] = (torch_zip(valid, {}), "archive/data/0")
    cases["view_past_storage_end.ckpt"] = (torch_zip(state_dict_with(rebuild(persistent_storage("FloatStorage", "0", 4), 2, [4], [1])), {"0": FLOATS4}), "beyond")
    cases["view_size_overflow.ckpt"] = (torch_zip(state_dict_with(rebuild(persistent_storage("FloatStorage", "0", 4), 0, [2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1], [0, 0, 0])), {"0": FLOATS4}), "elements")
    cases["view_negative_stride.ckpt"] = (torch_zip(state_dict_with(rebuild(persistent_storage("FloatStorage", "0", 4), 3, [4], [-1])), {"0": FLOATS4}), "stride")
    cases["storage_type_mismatch.ckpt"] = (torch_zip(state_dict_with(b"(" + rebuild(persistent_storage("FloatStorage", "0", 4), 0, [4], [1])
                                                                       + rebuild(persistent_storage("HalfStorage", "0", 8), 0, [8], [1]) + b"l"), {"0": FLOATS4}), "storage")
    cases["deep_nesting.ckpt"] = (torch_zip(b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."), "nest")
    cases["memo_index_huge.ckpt"] = (torch_zip(b"\x80\x02}r\xff\xff\xff\x7fh\x00."), "memo")
    cases["memo_get_missing.ckpt"] = (torch_zip(b"\x80\x02j\x10\x00\x00\x00."), "memo")
    cases["huge_string_length.ckpt"] = (torch_zip(b"\x80\x04\x8d" + struct.pack("<Q", 2 ** 62) + b"abc."), "length")
    cases["huge_long4.ckpt"] = (torch_zip(b"\x80\x02\x8b" + struct.pack("<i", 2 ** 30) + b"\x01."), "length")
    cases["truncated_pickle.ckpt"] = (torch_zip(valid[:-10], {"0": FLOATS4}), "end of the pickle")
    cases["unknown_opcode.ckpt"] = (torch_zip(b"\x80\x02\xff."), "opcode")
    cases["stack_underflow.ckpt"] = (torch_zip(b"\x80\x02R."), "stack")
    cases["no_tensors.ckpt"] = (saved({"state_dict": {}, "hyper_parameters": {"n_head": 4}}), "no tensors")
    cases["not_a_checkpoint.ckpt"] = (b"hello, this is not a checkpoint\n", "not a zip")
    cases["empty_file.ckpt"] = (b"", "not a zip")
    return cases


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    manifest = {}
    for name, (data, fragment) in sorted(corpus().items()):
        path = os.path.join(OUT, name)
        with open(path, "wb") as f:
            f.write(data)
        manifest[name] = fragment
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"regenerate": "/usr/bin/python3 tools/reference/make_malicious_checkpoints.py", "marker": MARKER, "cases": manifest}, f, indent=1)
    print(f"wrote {len(manifest)} files to {OUT}")


if __name__ == "__main__":
    main()
