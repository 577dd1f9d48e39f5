"""NVlabs stylegan2-ada-pytorch (and stylegan3-repo StyleGAN2) network pickles.

File structure (a plain ``pickle`` of a dict, written by their ``training_loop.py``)::

    {'G': Generator, 'D': Discriminator, 'G_ema': Generator, 'augment_pipe': ...,
     'training_set_kwargs': {...}, 'progress': {...}, ...}

Each network is an instance of a ``persistent_class``: it pickles as
``_reconstruct_persistent_obj(meta)`` with ``meta = {type, version, class_name, module_src,
state}``; ``state`` is the ``torch.nn.Module.__dict__`` (``_parameters``, ``_buffers``,
``_modules`` holding the child persistent objects, ``_init_kwargs`` = the constructor's keyword
arguments). Our safe unpickler returns these as :class:`PersistentObject` records; this module
flattens the record tree into a state_dict and reads the architecture from ``_init_kwargs``.

``G_ema`` (the exponential moving average of the generator weights, what NVlabs samples with)
is used; ``G`` only when a pickle has no ``G_ema``. StyleGAN3 generators (alias-free synthesis:
``synthesis.input``, layers named like ``L0_36_512``) are refused.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from phosphene.errors import PhospheneError
from phosphene.models.stylegan2.config import GeneratorConfig

from .checkpoint import Checkpoint, as_tensor
from .safe_unpickle import PersistentObject, TorchModuleRecord

FORMAT = "nvlabs-pickle"
SUPPORTED = ("NVlabs stylegan2-ada-pytorch / stylegan3-repo StyleGAN2 pickles, legacy TensorFlow "
             "StyleGAN2 pickles, rosinality stylegan2-pytorch .pt files, phosphene .safetensors")

# init_kwargs that do not change what the generator computes at inference.
_IGNORED_KWARGS = {"fused_modconv_default", "fp16_channels_last", "num_ws", "class_name"}


def is_nvlabs(data: Any) -> bool:
    if isinstance(data, PersistentObject):
        return True
    return isinstance(data, dict) and any(
        isinstance(data.get(k), PersistentObject) for k in ("G_ema", "G"))


def read(data: Any) -> Checkpoint:
    """Checkpoint from an unpickled NVlabs snapshot dict (or a bare pickled generator)."""
    notes: list[str] = []
    if isinstance(data, PersistentObject):
        generator = data
    elif isinstance(data.get("G_ema"), PersistentObject):
        generator = data["G_ema"]
    else:
        generator = data["G"]
        notes.append("the pickle has no G_ema; using G (the raw training weights, usually "
                     "noisier than the moving average)")

    state = flatten_module(generator)
    refuse_stylegan3(generator, state)
    if generator.class_name != "Generator":
        raise PhospheneError(f"{FORMAT}: the network is a {generator.class_name}, not a StyleGAN2 "
                             "Generator")
    config = config_from_init_kwargs(generator.state.get("_init_kwargs") or {})
    return Checkpoint(FORMAT, config, state, notes)


def flatten_module(record: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """``module.state_dict()`` of a recorded module tree: parameters and persistent buffers."""
    if not isinstance(record, (PersistentObject, TorchModuleRecord)):
        raise PhospheneError(f"{FORMAT}: unexpected object {type(record).__name__} at "
                             f"'{prefix.rstrip('.') or 'top level'}' in the module tree")
    state = record.state
    skip = set(state.get("_non_persistent_buffers_set") or ())
    out: dict[str, torch.Tensor] = {}
    for name, value in (state.get("_parameters") or {}).items():
        if value is not None:
            out[prefix + name] = as_tensor(value, prefix + name)
    for name, value in (state.get("_buffers") or {}).items():
        if value is not None and name not in skip:
            out[prefix + name] = as_tensor(value, prefix + name)
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(flatten_module(child, f"{prefix}{name}."))
    return out


def refuse_stylegan3(generator: PersistentObject, state: dict[str, torch.Tensor]) -> None:
    alias_free = (any(k.startswith("synthesis.input.") for k in state)
                  or any(re.match(r"synthesis\.L\d+_\d+_\d+\.", k) for k in state)
                  or "class SynthesisInput" in generator.module_src)
    if alias_free:
        raise PhospheneError(
            "this is a StyleGAN3 network (alias-free synthesis: synthesis.input and layers like "
            f"L0_36_512); phosphene runs StyleGAN2 generators only. Supported: {SUPPORTED}")


def config_from_init_kwargs(init_kwargs: dict) -> GeneratorConfig:
    """GeneratorConfig from ``Generator(**init_kwargs)``.

    stylegan2-ada-pytorch passes ``synthesis_kwargs={...}``; the stylegan3 repo's StyleGAN2
    takes the same keys as top-level ``**synthesis_kwargs``. Both are accepted.
    """
    kwargs = dict(init_kwargs)
    mapping = dict(kwargs.pop("mapping_kwargs", None) or {})
    synthesis = dict(kwargs.pop("synthesis_kwargs", None) or {})
    top = {k: kwargs.pop(k) for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
           if k in kwargs}
    synthesis.update(kwargs)  # stylegan3-repo style: the rest are synthesis kwargs

    for section in (mapping, synthesis):
        activation = section.pop("activation", "lrelu")
        if activation != "lrelu":
            raise PhospheneError(f"{FORMAT}: activation '{activation}' is not supported (lrelu only)")
    kernel = synthesis.pop("conv_kernel", 3)
    if kernel != 3:
        raise PhospheneError(f"{FORMAT}: conv_kernel {kernel} is not supported (3 only)")

    renamed = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier"}
    fields = dict(top)
    for key, value in mapping.items():
        fields[renamed.get(key, key)] = value
    fields.update(synthesis)
    for key in _IGNORED_KWARGS:
        fields.pop(key, None)
    architecture = fields.get("architecture", "skip")
    if architecture != "skip":
        raise PhospheneError(f"{FORMAT}: synthesis architecture '{architecture}' is not supported "
                             "(StyleGAN2 'skip' only, as in config-e/f)")
    if "resample_filter" in fields:
        fields["resample_filter"] = [int(v) for v in fields["resample_filter"]]
    try:
        return GeneratorConfig.from_dict(fields)
    except (ValueError, TypeError) as exc:
        raise PhospheneError(f"{FORMAT}: generator arguments not understood: {exc}") from exc
