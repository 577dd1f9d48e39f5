"""Loading never runs code from a file, and bad files give a clear error naming what they are."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys

import pytest
import torch

from loading_formats import (persistent_tree, tiny_generator, write_nvlabs_pickle,
                             write_rosinality_converted, write_tf_pickle)
from phosphene.errors import PhospheneError
from phosphene.models.loading import UnsafePickleError, load_generator, save_generator
from phosphene.models.loading.safe_unpickle import safe_load


class _RunsACommand:
    """A payload that runs a shell command when unpickled by a trusting loader."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _control_check_payload_really_runs(tmp_path):
    # The payload is live: the stock unpickler does run it (in a child process).
    marker = tmp_path / "stock-unpickler-ran-it"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_RunsACommand(marker)))
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(path)!r}, 'rb'))"],
                   check=True, timeout=60)
    return marker.exists()


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path):
    assert _control_check_payload_really_runs(tmp_path)
    marker = tmp_path / "PWNED"
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _RunsACommand(marker)}))
    with pytest.raises(UnsafePickleError, match=r"posix\.system") as info:
        load_generator(path)
    assert "allow-list" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    (eval, ("__import__('os').system('touch {m}')",)),
    (exec, ("open('{m}', 'w')",)),
    (subprocess.call, (["touch", "{m}"],)),
])
def test_other_code_running_globals_are_refused(tmp_path, payload):
    marker = tmp_path / "PWNED"
    func, args = payload
    args = tuple(a.format(m=marker) if isinstance(a, str) else [x.format(m=marker) for x in a]
                 for a in args)

    class Payload:
        def __reduce__(self):
            return (func, args)

    with pytest.raises(UnsafePickleError, match=func.__name__):
        safe_load(io.BytesIO(pickle.dumps(Payload())))
    assert not marker.exists()


def test_hostile_torch_save_is_refused_by_weights_only_loading(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {"style.1.weight": _RunsACommand(marker)}}, path)
    with pytest.raises(UnsafePickleError, match="system"):
        load_generator(path)
    assert not marker.exists()


def test_nvlabs_module_src_is_never_executed(tmp_path):
    marker = tmp_path / "MODULE_SRC_WAS_EXECUTED"
    path = tmp_path / "net.pkl"
    write_nvlabs_pickle(path, tiny_generator(), None, marker)
    assert b"module_src was executed" in path.read_bytes()  # the payload is in the file
    load_generator(path)
    assert not marker.exists()
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


def test_tf_build_module_src_is_never_executed(tmp_path):
    marker = tmp_path / "BUILD_MODULE_SRC_WAS_EXECUTED"
    path = tmp_path / "net.pkl"
    G = tiny_generator()
    write_tf_pickle(path, G, G, marker)
    load_generator(path)
    assert not marker.exists()


def test_stylegan3_pickle_is_refused_with_what_is_supported(tmp_path):
    class SynthesisInput(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.affine = torch.nn.Linear(4, 4)

    class SynthesisNetwork(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.input = SynthesisInput()
            self.add_module("L0_36_512", torch.nn.Linear(4, 4))

    class Generator(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.synthesis = SynthesisNetwork()

    src = "class SynthesisInput(torch.nn.Module): ...\n"
    tree = persistent_tree(Generator(), src, {"z_dim": 512, "w_dim": 512, "img_resolution": 1024,
                                              "img_channels": 3, "c_dim": 0})
    path = tmp_path / "stylegan3-t-ffhq-1024x1024.pkl"
    write_nvlabs_pickle(path, tiny_generator(), None, tmp_path / "m", generator_tree=tree)
    with pytest.raises(PhospheneError, match="StyleGAN3") as info:
        load_generator(path)
    assert "StyleGAN2" in str(info.value) and "rosinality" in str(info.value)


def test_tf_pickle_with_progressive_growing_architecture_is_refused(tmp_path):
    G = tiny_generator()
    from loading_formats import tf_static_kwargs

    path = tmp_path / "orig.pkl"
    kwargs = tf_static_kwargs(G.config)
    kwargs["architecture"] = "resnet"
    write_tf_pickle(path, G, G, tmp_path / "m", static_kwargs=kwargs)
    with pytest.raises(PhospheneError, match="architecture 'resnet'"):
        load_generator(path)


@pytest.mark.parametrize("fmt", ["nvlabs", "tf", "rosinality", "safetensors"])
def test_truncated_files_give_a_clear_error(tmp_path, fmt):
    G = tiny_generator()
    path = tmp_path / f"model.{fmt}"
    if fmt == "nvlabs":
        write_nvlabs_pickle(path, G, None, tmp_path / "m")
    elif fmt == "tf":
        write_tf_pickle(path, G, G, tmp_path / "m")
    elif fmt == "rosinality":
        write_rosinality_converted(path, G)
    else:
        save_generator(G, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PhospheneError, match="corrupt or truncated"):
        load_generator(path)


@pytest.mark.parametrize("content,what", [
    (b"", "empty file"),
    (b"hello, this is not a model\n", "text file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "PNG image"),
    (bytes(range(7, 200)), "unrecognised binary"),
])
def test_unsupported_files_say_what_they_are_and_what_is_supported(tmp_path, content, what):
    path = tmp_path / "model.pkl"
    path.write_bytes(content)
    with pytest.raises(PhospheneError, match=what) as info:
        load_generator(path)
    assert "safetensors" in str(info.value) and "rosinality" in str(info.value)


def test_pickle_of_something_else_is_named(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    with pytest.raises(PhospheneError, match="a dict with keys 'weights'"):
        load_generator(path)


def test_foreign_safetensors_is_explained(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, path)
    with pytest.raises(PhospheneError, match="not a phosphene generator"):
        load_generator(path)


def test_missing_source_names_the_alternatives(tmp_path):
    with pytest.raises(PhospheneError, match="no such file.*builtin:abstract.*ffhq"):
        load_generator(tmp_path / "nope.pkl")
