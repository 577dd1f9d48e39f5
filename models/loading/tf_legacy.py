"""Legacy TensorFlow StyleGAN2 pickles (NVlabs/stylegan2 and stylegan2-ada TF).

File structure: a ``pickle`` of the tuple ``(G, D, Gs)``; each is a ``dnnlib.tflib.Network``
whose ``__getstate__`` dict is::

    {'version': 4, 'name': 'G', 'static_kwargs': {...constructor arguments...},
     'components': {'mapping': Network, 'synthesis': Network},
     'build_module_src': '<python source>', 'build_func_name': 'G_main',
     'variables': [(local_name, numpy array), ...]}

``Gs`` (the moving average) is used. Variable names, prefixed with their component, and the
conversion to our keys (TF stores dense weights [in, out] and conv weights
[kh, kw, in, out]; modulation biases are trained around 0 where ours sit around 1)::

    dlatent_avg                              -> mapping.w_avg
    mapping/Dense{i}/weight (T), bias        -> mapping.fc{i}.weight, bias
    mapping/LabelEmbed/weight (T), bias      -> mapping.embed.weight, bias
    synthesis/4x4/Const/const [0]            -> synthesis.b4.const
    synthesis/{r}x{r}/{Conv|Conv0_up|Conv1|ToRGB}/
        weight   transpose(3,2,0,1)          -> ...weight  (Conv0_up: flipped in space first)
        mod_weight (T), mod_bias + 1         -> ...affine.weight, affine.bias
        bias, noise_strength                 -> ...bias, noise_strength
    synthesis/noise{k} [0, 0]                -> conv0/conv1 noise_const, k in layer order

where Conv (4x4) -> b4.conv1, Conv0_up -> b{r}.conv0, Conv1 -> b{r}.conv1, ToRGB -> torgb.
No TensorFlow is needed, and ``build_module_src`` is never executed.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import torch

from phosphene.errors import PhospheneError
from phosphene.models.stylegan2.config import GeneratorConfig

from .checkpoint import Checkpoint, as_tensor
from .safe_unpickle import TFNetworkRecord

FORMAT = "tf-stylegan2-pickle"

# static_kwargs -> (our config field, converter). fmap_base counts channels from a stage index
# one lower than channel_base does, hence the factor 2.
_KWARGS = {
    "latent_size": ("z_dim", int),
    "label_size": ("c_dim", int),
    "dlatent_size": ("w_dim", int),
    "resolution": ("img_resolution", int),
    "num_channels": ("img_channels", int),
    "mapping_layers": ("mapping_layers", int),
    "label_fmaps": ("embed_features", int),
    "mapping_fmaps": ("layer_features", int),
    "mapping_lrmul": ("mapping_lr_multiplier", float),
    "w_avg_beta": ("w_avg_beta", float),
    "dlatent_avg_beta": ("w_avg_beta", float),
    "fmap_base": ("channel_base", lambda v: int(v) * 2),
    "fmap_max": ("channel_max", int),
    "num_fp16_res": ("num_fp16_res", int),
    "conv_clamp": ("conv_clamp", float),
    "resample_kernel": ("resample_filter", lambda v: [int(x) for x in v]),
    "use_noise": ("use_noise", bool),
}
# Arguments that only matter for training or graph construction.
_IGNORED = {"truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure",
            "is_template_graph", "randomize_noise", "dtype", "fused_modconv"}


def is_tf(data: Any) -> bool:
    return isinstance(data, TFNetworkRecord) or (
        isinstance(data, tuple) and len(data) == 3
        and all(isinstance(n, TFNetworkRecord) for n in data))


def read(data: Any) -> Checkpoint:
    Gs = data[2] if isinstance(data, tuple) else data
    state = Gs.state
    version = state.get("version")
    if not isinstance(version, int) or version < 4:
        raise PhospheneError(f"{FORMAT}: network pickle version {version} is too old (StyleGAN v1 "
                             "or early StyleGAN2); version 4 is supported")
    config = config_from_static_kwargs(state.get("static_kwargs") or {})
    variables = collect_variables(Gs)
    if "mapping/LabelConcat/weight" in variables:
        raise PhospheneError(f"{FORMAT}: a conditional model from the original StyleGAN2 TF code "
                             "(LabelConcat); only stylegan2-ada's LabelEmbed conditioning is "
                             "supported")
    if any(name.startswith("synthesis/ToRGB_lod") for name in variables):
        raise PhospheneError(f"{FORMAT}: this generator uses the progressive-growing 'orig' "
                             "architecture; only 'skip' is supported")
    return Checkpoint(FORMAT, config, convert_variables(variables, config))


def config_from_static_kwargs(kwargs: dict) -> GeneratorConfig:
    fields: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name in _IGNORED:
            continue
        if name == "nonlinearity" or name == "mapping_nonlinearity":
            if value != "lrelu":
                raise PhospheneError(f"{FORMAT}: {name}='{value}' is not supported (lrelu only)")
            continue
        if name == "architecture":
            if value != "skip":
                raise PhospheneError(f"{FORMAT}: architecture '{value}' is not supported "
                                     "(StyleGAN2 'skip' only)")
            continue
        if name not in _KWARGS:
            raise PhospheneError(f"{FORMAT}: unknown generator argument '{name}' (a modified "
                                 "StyleGAN2; refusing rather than guessing its meaning)")
        if value is not None:
            field, convert = _KWARGS[name]
            fields[field] = convert(value)
    fields.setdefault("channel_base", 16384 * 2)  # TF G_synthesis default fmap_base
    try:
        return GeneratorConfig.from_dict(fields)
    except (ValueError, TypeError) as exc:
        raise PhospheneError(f"{FORMAT}: generator arguments not understood: {exc}") from exc


def collect_variables(net: TFNetworkRecord, prefix: str = "") -> dict[str, np.ndarray]:
    """All variables of a network and its components, named ``component/.../local_name``."""
    out: dict[str, np.ndarray] = {}
    for name, value in net.state.get("variables") or []:
        out[prefix + name] = value
    for name, component in (net.state.get("components") or {}).items():
        if isinstance(component, TFNetworkRecord):
            out.update(collect_variables(component, f"{prefix}{name}/"))
    return out


def convert_variables(tf: dict[str, np.ndarray], config: GeneratorConfig) -> dict[str, torch.Tensor]:
    def get(name: str) -> np.ndarray:
        if name not in tf:
            raise PhospheneError(f"{FORMAT}: variable '{name}' is missing")
        return np.asarray(tf[name])

    state: dict[str, np.ndarray] = {"mapping.w_avg": get("dlatent_avg")}
    for i in range(config.mapping_layers):
        state[f"mapping.fc{i}.weight"] = get(f"mapping/Dense{i}/weight").T
        state[f"mapping.fc{i}.bias"] = get(f"mapping/Dense{i}/bias")
    if config.c_dim > 0:
        state["mapping.embed.weight"] = get("mapping/LabelEmbed/weight").T
        state["mapping.embed.bias"] = get("mapping/LabelEmbed/bias")

    def modulated(ours: str, theirs: str, noise: int | None, flip: bool = False) -> None:
        weight = get(f"{theirs}/weight")
        if flip:  # TF's transposed conv correlates where ours convolves
            weight = weight[::-1, ::-1]
        state[f"{ours}.weight"] = weight.transpose(3, 2, 0, 1)
        state[f"{ours}.bias"] = get(f"{theirs}/bias")
        state[f"{ours}.affine.weight"] = get(f"{theirs}/mod_weight").T
        state[f"{ours}.affine.bias"] = get(f"{theirs}/mod_bias") + 1
        if noise is not None and config.use_noise:
            state[f"{ours}.noise_strength"] = get(f"{theirs}/noise_strength")
            state[f"{ours}.noise_const"] = get(f"synthesis/noise{noise}")[0, 0]

    state["synthesis.b4.const"] = get("synthesis/4x4/Const/const")[0]
    for res in config.block_resolutions:
        block, scope = f"synthesis.b{res}", f"synthesis/{res}x{res}"
        first_noise = 2 * int(math.log2(res)) - 5  # noise inputs are numbered in layer order
        if res == 4:
            modulated(f"{block}.conv1", f"{scope}/Conv", noise=0)
        else:
            modulated(f"{block}.conv0", f"{scope}/Conv0_up", noise=first_noise, flip=True)
            modulated(f"{block}.conv1", f"{scope}/Conv1", noise=first_noise + 1)
        modulated(f"{block}.torgb", f"{scope}/ToRGB", noise=None)

    unused = sorted(n for n in tf if not re.fullmatch(r"lod|synthesis/lod", n)
                    and not _is_consumed(n, config))
    if unused:
        raise PhospheneError(f"{FORMAT}: unexpected variables {', '.join(unused[:4])} (a modified "
                             "StyleGAN2 architecture?)")
    return {key: as_tensor(value, key) for key, value in state.items()}


def _is_consumed(name: str, config: GeneratorConfig) -> bool:
    patterns = [r"dlatent_avg", r"mapping/Dense\d+/(weight|bias)", r"synthesis/noise\d+",
                r"synthesis/4x4/Const/const",
                r"synthesis/\d+x\d+/(Conv|Conv0_up|Conv1|ToRGB)/(weight|bias|mod_weight|mod_bias|noise_strength)"]
    if config.c_dim > 0:
        patterns.append(r"mapping/LabelEmbed/(weight|bias)")
    return any(re.fullmatch(p, name) for p in patterns)
