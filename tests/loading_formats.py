"""Writers for every checkpoint format phosphene loads, used by tests/test_loading*.py.

Each writer takes tiny generators with random weights (our module) and lays their weights out
exactly as the source project stores them: the NVlabs persistent-object pickle, the TensorFlow
``(G, D, Gs)`` tuple of network states (TF weight layouts), rosinality ``.pt`` dicts. The inverse
transforms here are written independently of the loaders, so a mistake on either side shows up
as a numeric mismatch.

Pickling NVlabs / TF objects needs their globals (``torch_utils.persistence``, ``dnnlib``) to
exist while pickling; :func:`fake_modules` registers stand-ins in ``sys.modules`` for the
duration of the write only, so the loader under test can never import them.
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
import torch

from phosphene.models.stylegan2 import Generator, GeneratorConfig

TINY = dict(z_dim=32, w_dim=32, img_resolution=16, channel_base=256, channel_max=32,
            mapping_layers=2)


def tiny_generator(seed: int = 0, **overrides) -> Generator:
    """A small generator whose every weight is random (also biases, noise strengths, w_avg),
    so that a transposed, dropped or swapped tensor changes the output."""
    config = GeneratorConfig(**{**TINY, **overrides})
    torch.manual_seed(seed)
    G = Generator(config)
    with torch.no_grad():
        for name, tensor in G.state_dict().items():
            if name.endswith("resample_filter"):
                continue
            if name.endswith(("bias", "noise_strength", "w_avg")):
                tensor.add_(torch.randn_like(tensor) * 0.3)
            elif name.endswith("noise_const"):
                tensor.copy_(torch.randn_like(tensor))
    return G.eval().requires_grad_(False)


def sample_inputs(G: Generator, n: int = 2, seed: int = 123):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([n, G.z_dim], generator=gen)
    c = torch.nn.functional.one_hot(torch.arange(n) % G.c_dim, G.c_dim).float() if G.c_dim else None
    return z, c


def state_np(G: Generator) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in G.state_dict().items()}


@contextlib.contextmanager
def fake_modules(**modules: dict):
    """Register ``name -> {attr: value}`` as importable modules (and their parents) for a while."""
    added = []
    try:
        for name, attrs in modules.items():
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                sub = ".".join(parts[:i])
                if sub not in sys.modules:
                    sys.modules[sub] = types.ModuleType(sub)
                    added.append(sub)
            module = sys.modules[name]
            for attr, value in attrs.items():
                setattr(module, attr, value)
                if isinstance(value, (type, types.FunctionType)):
                    value.__module__ = name
                    value.__qualname__ = attr
        yield
    finally:
        for name in reversed(added):
            sys.modules.pop(name, None)


# ---- NVlabs stylegan2-ada-pytorch snapshot pickle ------------------------------------------

def marker_module_src(marker_path) -> str:
    """Source text that, if anyone ever executed it, would leave a file behind."""
    return ("import pathlib\n"
            f"pathlib.Path({str(marker_path)!r}).write_text('module_src was executed')\n"
            "class Generator: pass\n")


class _PersistentStub:
    """Pickles like an NVlabs persistent_class instance: _reconstruct_persistent_obj(meta)."""

    reconstruct = None  # set inside fake_modules

    def __init__(self, meta: dict):
        self.meta = meta

    def __reduce__(self):
        return (_PersistentStub.reconstruct, (self.meta,))


def _easydict_type():
    return type("EasyDict", (dict,), {})


def persistent_tree(module: torch.nn.Module, module_src: str, init_kwargs: dict | None = None,
                    class_name: str | None = None) -> _PersistentStub:
    """The persistent-object structure NVlabs' pickle holds for ``module`` (recursively)."""
    children = OrderedDict((name, persistent_tree(child, module_src))
                           for name, child in module._modules.items())
    state = {
        "training": False,
        "_parameters": OrderedDict((k, torch.nn.Parameter(v.detach().clone(), requires_grad=False))
                                   for k, v in module._parameters.items() if v is not None),
        "_buffers": OrderedDict((k, v.detach().clone()) for k, v in module._buffers.items()),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": OrderedDict(), "_forward_hooks": OrderedDict(),
        "_forward_pre_hooks": OrderedDict(), "_state_dict_hooks": OrderedDict(),
        "_load_state_dict_pre_hooks": OrderedDict(),
        "_modules": children,
        "_init_args": (),
        "_init_kwargs": init_kwargs or {},
    }
    meta = dict(type="class", version=6, module_src=module_src,
                class_name=class_name or type(module).__name__, state=state)
    return _PersistentStub(meta)


def nvlabs_init_kwargs(config: GeneratorConfig, EasyDict, style: str = "ada") -> dict:
    """``Generator.init_kwargs`` as training_loop would record it.

    style 'ada': stylegan2-ada-pytorch (synthesis_kwargs dict); 'sg3': the stylegan3 repo's
    StyleGAN2 (synthesis arguments at top level, plus fused_modconv_default)."""
    mapping = EasyDict(num_layers=config.mapping_layers)
    synthesis = dict(channel_base=config.channel_base, channel_max=config.channel_max,
                     num_fp16_res=config.num_fp16_res, conv_clamp=config.conv_clamp)
    top = dict(z_dim=config.z_dim, c_dim=config.c_dim, w_dim=config.w_dim,
               img_resolution=config.img_resolution, img_channels=config.img_channels,
               mapping_kwargs=mapping)
    if style == "ada":
        return EasyDict(top, synthesis_kwargs=EasyDict(synthesis))
    return EasyDict(top, **synthesis, fused_modconv_default="inference_only")


def write_nvlabs_pickle(path, G_ema: Generator | None, G: Generator | None, marker_path,
                        protocol: int = 4, style: str = "ada", numpy_major: int = 2,
                        generator_tree=None) -> None:
    """A stylegan2-ada-pytorch training snapshot: {'G', 'D', 'G_ema', 'augment_pipe', ...}."""
    src = marker_module_src(marker_path)

    def reconstruct(meta):  # never called: only its name goes into the pickle
        raise AssertionError

    EasyDict = _easydict_type()
    with fake_modules(**{"torch_utils.persistence": {"_reconstruct_persistent_obj": reconstruct},
                         "dnnlib.util": {"EasyDict": EasyDict}}):
        _PersistentStub.reconstruct = reconstruct
        snapshot = {}
        for key, net in (("G", G), ("G_ema", G_ema)):
            if net is not None:
                snapshot[key] = generator_tree or persistent_tree(
                    net, src, nvlabs_init_kwargs(net.config, EasyDict, style))
        D = torch.nn.Linear(4, 1)  # stands in for the discriminator: must be ignored
        snapshot["D"] = persistent_tree(D, src, {"c_dim": 0}, class_name="Discriminator")
        snapshot["augment_pipe"] = persistent_tree(torch.nn.Module(), src, {"xflip": 1},
                                                   class_name="AugmentPipe")
        snapshot["training_set_kwargs"] = EasyDict(path="~/datasets/tiny.zip", resolution=16,
                                                   max_size=np.int64(70000))
        snapshot["progress"] = {"cur_nimg": np.int64(1234), "augment_p": np.float32(0.25),
                                "fakes_mean": np.zeros([3], dtype=np.float32)}
        data = pickle.dumps(snapshot, protocol=protocol)
    _PersistentStub.reconstruct = None
    if numpy_major == 1:
        data = as_numpy1_pickle(data, protocol)
    with open(path, "wb") as f:
        f.write(data)


def as_numpy1_pickle(data: bytes, protocol: int) -> bytes:
    """Rewrite numpy 2.x globals (numpy._core.*) to numpy 1.x's (numpy.core.*).

    Only valid for protocol <= 3, where globals are newline-terminated text (GLOBAL opcode)."""
    assert protocol <= 3, "numpy 1.x rewrite needs text GLOBAL opcodes"
    assert b"numpy._core." in data
    return data.replace(b"numpy._core.", b"numpy.core.")


# ---- TensorFlow StyleGAN2 (G, D, Gs) pickle -------------------------------------------------

def tf_variables(G: Generator) -> dict[str, dict[str, np.ndarray]]:
    """Our weights in TF StyleGAN2's variable names and layouts, per component network."""
    s, cfg = state_np(G), G.config
    conv = lambda w: w.transpose(2, 3, 1, 0)  # [O, I, kh, kw] -> [kh, kw, I, O]
    main = {"dlatent_avg": s["mapping.w_avg"], "lod": np.float32(0)}
    mapping = {}
    for i in range(cfg.mapping_layers):
        mapping[f"Dense{i}/weight"] = s[f"mapping.fc{i}.weight"].T
        mapping[f"Dense{i}/bias"] = s[f"mapping.fc{i}.bias"]
    if cfg.c_dim:
        mapping["LabelEmbed/weight"] = s["mapping.embed.weight"].T
        mapping["LabelEmbed/bias"] = s["mapping.embed.bias"]
    synthesis = {"4x4/Const/const": s["synthesis.b4.const"][None]}
    noise_index = 0
    for res in cfg.block_resolutions:
        layers = [("conv1", "Conv")] if res == 4 else [("conv0", "Conv0_up"), ("conv1", "Conv1")]
        for ours, theirs in layers:
            p, q = f"synthesis.b{res}.{ours}", f"{res}x{res}/{theirs}"
            weight = conv(s[f"{p}.weight"])
            synthesis[f"{q}/weight"] = weight[::-1, ::-1] if theirs == "Conv0_up" else weight
            synthesis[f"{q}/bias"] = s[f"{p}.bias"]
            synthesis[f"{q}/mod_weight"] = s[f"{p}.affine.weight"].T
            synthesis[f"{q}/mod_bias"] = s[f"{p}.affine.bias"] - 1
            synthesis[f"{q}/noise_strength"] = s[f"{p}.noise_strength"]
            synthesis[f"noise{noise_index}"] = s[f"{p}.noise_const"][None, None]
            noise_index += 1
        p, q = f"synthesis.b{res}.torgb", f"{res}x{res}/ToRGB"
        synthesis[f"{q}/weight"] = conv(s[f"{p}.weight"])
        synthesis[f"{q}/bias"] = s[f"{p}.bias"]
        synthesis[f"{q}/mod_weight"] = s[f"{p}.affine.weight"].T
        synthesis[f"{q}/mod_bias"] = s[f"{p}.affine.bias"] - 1
    as_f32 = lambda d: {k: np.array(v, dtype=np.float32, order="C") for k, v in d.items()}
    return {"main": as_f32(main), "mapping": as_f32(mapping), "synthesis": as_f32(synthesis)}


def tf_static_kwargs(config: GeneratorConfig, **extra) -> dict:
    return dict(num_channels=config.img_channels, resolution=config.img_resolution,
                label_size=config.c_dim, latent_size=config.z_dim, dlatent_size=config.w_dim,
                mapping_layers=config.mapping_layers, fmap_base=config.channel_base // 2,
                fmap_max=config.channel_max, architecture="skip", truncation_psi=0.5, **extra)


def write_tf_pickle(path, Gs: Generator, G: Generator, marker_path, protocol: int = 3,
                    numpy_major: int = 1, static_kwargs: dict | None = None) -> None:
    src = marker_module_src(marker_path)

    def getstate(self):
        return self._state

    Network = type("Network", (), {"__getstate__": getstate})

    def network(name, func, variables, kwargs, components=None):
        net = Network()
        net._state = {"version": 4, "name": name, "static_kwargs": kwargs,
                      "components": components or {}, "build_module_src": src,
                      "build_func_name": func, "variables": list(variables.items())}
        return net

    def generator(G_: Generator, name: str):
        v = tf_variables(G_)
        kwargs = static_kwargs if static_kwargs is not None else tf_static_kwargs(G_.config)
        components = {"mapping": network("G_mapping", "G_mapping", v["mapping"], kwargs),
                      "synthesis": network("G_synthesis", "G_synthesis_stylegan2",
                                           v["synthesis"], kwargs)}
        return network(name, "G_main", v["main"], kwargs, components)

    with fake_modules(**{"dnnlib.tflib.network": {"Network": Network}}):
        D = network("D", "D_stylegan2", {"Output/weight": np.ones([4, 1], np.float32)},
                    {"resolution": Gs.img_resolution})
        data = pickle.dumps((generator(G, "G"), D, generator(Gs, "Gs")), protocol=protocol)
    if numpy_major == 1:
        data = as_numpy1_pickle(data, protocol)
    with open(path, "wb") as f:
        f.write(data)


# ---- rosinality stylegan2-pytorch ------------------------------------------------------------

def rosinality_state(G: Generator) -> dict[str, torch.Tensor]:
    """Our weights under rosinality's Generator.state_dict() names and shapes."""
    s = {k: v.detach().clone() for k, v in G.state_dict().items()}
    cfg = G.config
    out: dict[str, torch.Tensor] = {}
    for i in range(cfg.mapping_layers):
        out[f"style.{i + 1}.weight"] = s[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = s[f"mapping.fc{i}.bias"]
    out["input.input"] = s["synthesis.b4.const"][None]
    blur = torch.tensor([1., 3., 3., 1.])
    blur = torch.outer(blur, blur) / blur.sum() ** 2

    def styled(theirs, ours, noise_index, upsample=False):
        out[f"{theirs}.conv.weight"] = s[f"{ours}.weight"][None]
        out[f"{theirs}.conv.modulation.weight"] = s[f"{ours}.affine.weight"]
        out[f"{theirs}.conv.modulation.bias"] = s[f"{ours}.affine.bias"]
        out[f"{theirs}.noise.weight"] = s[f"{ours}.noise_strength"].reshape(1)
        out[f"{theirs}.activate.bias"] = s[f"{ours}.bias"]
        out[f"noises.noise_{noise_index}"] = s[f"{ours}.noise_const"][None, None]
        if upsample:
            out[f"{theirs}.conv.blur.kernel"] = blur * 4

    def rgb(theirs, ours, upsample=True):
        out[f"{theirs}.conv.weight"] = s[f"{ours}.weight"][None]
        out[f"{theirs}.conv.modulation.weight"] = s[f"{ours}.affine.weight"]
        out[f"{theirs}.conv.modulation.bias"] = s[f"{ours}.affine.bias"]
        out[f"{theirs}.bias"] = s[f"{ours}.bias"].reshape(1, -1, 1, 1)
        if upsample:
            out[f"{theirs}.upsample.kernel"] = blur * 4

    styled("conv1", "synthesis.b4.conv1", 0)
    rgb("to_rgb1", "synthesis.b4.torgb", upsample=False)
    for k, res in enumerate(cfg.block_resolutions[1:]):
        styled(f"convs.{2 * k}", f"synthesis.b{res}.conv0", 2 * k + 1, upsample=True)
        styled(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", 2 * k + 2)
        rgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb")
    return out


def write_rosinality_converted(path, G: Generator) -> None:
    """What rosinality's convert_weight.py writes: {'g_ema': ..., 'latent_avg': ...}."""
    torch.save({"g_ema": rosinality_state(G), "latent_avg": G.mapping.w_avg.clone()}, path)


def write_rosinality_train_snapshot(path, g_ema: Generator, g: Generator) -> None:
    """What rosinality's train.py writes: g, d, g_ema, optimizers and the argparse args."""
    g_params = [torch.nn.Parameter(t.clone()) for t in rosinality_state(g).values()]
    g_optim = torch.optim.Adam(g_params, lr=0.002, betas=(0.0, 0.99))
    sum(p.sum() for p in g_params).backward()
    g_optim.step()
    d = {"convs.0.0.weight": torch.randn(8, 3, 1, 1), "final_linear.1.bias": torch.zeros(1)}
    d_optim = torch.optim.Adam([torch.nn.Parameter(v) for v in d.values()])
    args = argparse.Namespace(size=g_ema.img_resolution, latent=g_ema.w_dim,
                              n_mlp=g_ema.config.mapping_layers, channel_multiplier=2,
                              batch=16, iter=800000, r1=10, path="lmdb", ckpt=None)
    torch.save({"g": rosinality_state(g), "d": d, "g_ema": rosinality_state(g_ema),
                "g_optim": g_optim.state_dict(), "d_optim": d_optim.state_dict(), "args": args},
               path)
