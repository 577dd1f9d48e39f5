"""An allow-list unpickler: reads network pickles as plain data and never runs code from them.

A pickle is a small program. Each ``GLOBAL`` it contains names a callable (``module.name``)
that the stock unpickler imports and calls with arguments from the file — ``os.system`` works
as well as ``collections.OrderedDict``. NVlabs pickles go further on purpose: every network
object carries its module's *source code* (``module_src``), which their own loader ``exec``s.

:class:`SafeUnpickler` resolves a global only if it is on :data:`ALLOWED`, a table of vetted
callables that build data (dicts, tensors, numpy arrays) and nothing else. Three kinds of
network object are replaced by inert records:

- ``torch_utils.persistence._reconstruct_persistent_obj`` (stylegan2-ada-pytorch and the
  stylegan3 repo) -> :class:`PersistentObject`, which keeps ``class_name``, ``module_src``
  (as text, never executed) and the object's ``state`` (for a ``torch.nn.Module``: its
  ``__dict__`` with ``_parameters``, ``_buffers``, ``_modules``, ``_init_kwargs``, ...);
- ``dnnlib.tflib.network.Network`` (TensorFlow StyleGAN2) -> :class:`TFNetworkRecord`, which
  keeps the dict its ``__setstate__`` receives (variables as numpy arrays);
- ``torch.nn`` containers -> :class:`TorchModuleRecord` (their ``__dict__``, as data).

Tensor storages inside a plain pickle are themselves nested ``torch.save`` blobs
(``torch.storage._load_from_bytes``); we read those with ``torch.load(weights_only=True)``.
Anything else is refused with :class:`UnsafePickleError`, which names the global.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
from typing import Any, BinaryIO, Callable

from phosphene.errors import PhospheneError


class UnsafePickleError(PhospheneError):
    """The pickle names a global that is not on the allow-list; nothing was executed."""


class PersistentObject:
    """What an NVlabs ``persistent_class`` instance looked like, as plain data.

    NVlabs' own loader would ``exec(module_src)`` and rebuild the class; we keep the source as
    a string (it is useful to recognise StyleGAN3 networks) and the instance state as dicts and
    tensors.
    """

    def __init__(self, meta: dict):
        if not isinstance(meta, dict):
            raise UnsafePickleError("malformed NVlabs persistent object: its metadata is not a dict")
        self.class_name = str(meta.get("class_name", "?"))
        self.module_src = meta.get("module_src") or ""
        self.version = meta.get("version")
        state = meta.get("state")
        self.state: dict = state if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<NVlabs persistent object {self.class_name}>"


class TFNetworkRecord:
    """A ``dnnlib.tflib.network.Network`` as the dict its ``__getstate__`` wrote.

    Keys: ``version``, ``name``, ``static_kwargs``, ``components`` (name -> record),
    ``build_module_src`` (never executed), ``build_func_name``, ``variables`` (list of
    ``(local_name, numpy array)``).
    """

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<TF network {getattr(self, 'state', {}).get('name', '?')}>"


class TorchModuleRecord:
    """A stock ``torch.nn`` container (``Sequential``, ``ModuleList``, ...) as its ``__dict__``."""

    class_name = "torch.nn.Module"

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}


class _EasyDict(dict):
    """``dnnlib.EasyDict`` read as a plain dict (its attribute access is not needed)."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


def _module_record(class_name: str) -> type:
    return type(class_name.rsplit(".", 1)[-1], (TorchModuleRecord,), {"class_name": class_name})


def _load_storage_from_bytes(data: bytes):
    # The stock version calls torch.load(weights_only=False) on bytes from the file.
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


def _reconstructor(cls, base, state):
    # copyreg._reconstructor (pickle protocols 0/1) would call base.__new__(cls) for any class;
    # here cls has already passed find_class, and only our record types are accepted.
    if not (isinstance(cls, type) and issubclass(cls, (TFNetworkRecord, TorchModuleRecord, _EasyDict))):
        raise UnsafePickleError(f"refusing to reconstruct {cls!r} from a pickle")
    return cls.__new__(cls)


def _codecs_encode(text: str, encoding: str = "utf-8"):
    # Protocol-2 pickles store bytes as _codecs.encode(str, 'latin1').
    import codecs

    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafePickleError("refusing a _codecs.encode call with unexpected arguments")
    return codecs.encode(text, encoding)


def _build_allow_list() -> dict[tuple[str, str], Callable[[], Any]]:
    """``(module, name) -> factory`` returning the object to use; factories import lazily."""

    def lib_attr(module: str, name: str) -> Callable[[], Any]:
        def get():
            import importlib

            return getattr(importlib.import_module(module), name)
        return get

    def const(value):
        return lambda: value

    allowed: dict[tuple[str, str], Callable[[], Any]] = {
        ("collections", "OrderedDict"): const(collections.OrderedDict),
        ("builtins", "set"): const(set),
        ("builtins", "frozenset"): const(frozenset),
        ("builtins", "bytearray"): const(bytearray),
        ("builtins", "slice"): const(slice),
        ("copyreg", "_reconstructor"): const(_reconstructor),
        ("_codecs", "encode"): const(_codecs_encode),
        ("builtins", "object"): const(object),  # only as copyreg._reconstructor's base
        # dnnlib's attribute-dict, under both spellings.
        ("dnnlib", "EasyDict"): const(_EasyDict),
        ("dnnlib.util", "EasyDict"): const(_EasyDict),
        # Network objects -> inert records.
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): const(PersistentObject),
        ("dnnlib.tflib.network", "Network"): const(TFNetworkRecord),
        # Tensors and parameters (torch.Tensor.__reduce_ex__ / Parameter.__reduce_ex__).
        ("torch.storage", "_load_from_bytes"): const(_load_storage_from_bytes),
        ("torch._utils", "_rebuild_tensor"): lib_attr("torch._utils", "_rebuild_tensor"),
        ("torch._utils", "_rebuild_tensor_v2"): lib_attr("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"): lib_attr("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"):
            lib_attr("torch._utils", "_rebuild_parameter_with_state"),
        ("torch", "Size"): lib_attr("torch", "Size"),
        ("torch", "device"): lib_attr("torch", "device"),
    }
    for dtype in ("float16", "bfloat16", "float32", "float64", "uint8", "int8", "int16", "int32",
                  "int64", "bool"):
        allowed[("torch", dtype)] = lib_attr("torch", dtype)
    # numpy arrays, dtypes and scalars: numpy 1.x pickles say numpy.core, numpy 2.x numpy._core.
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = lambda: _numpy_reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = lambda: _numpy_scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = lambda: _numpy_frombuffer
    allowed[("numpy", "ndarray")] = lib_attr("numpy", "ndarray")
    allowed[("numpy", "dtype")] = lib_attr("numpy", "dtype")
    for kind in ("Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"):
        module = "torch.nn.modules.container"
        allowed[(module, kind)] = const(_module_record(f"{module}.{kind}"))
    return allowed


def _numpy_reconstruct(subtype, shape, dtype):
    import numpy as np

    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refusing a numpy array of subtype {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _numpy_scalar(dtype, data=None):
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError("refusing a numpy object scalar")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_frombuffer(buffer, dtype, shape, order):
    import numpy as np

    array = np.frombuffer(bytes(buffer), dtype=dtype)
    return array.reshape(shape, order=order).copy()


ALLOWED = _build_allow_list()


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only returns vetted, data-building callables."""

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 0-2 pickles spell Python 3 names the Python 2 way (__builtin__.set).
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        factory = ALLOWED.get((module, name))
        if factory is None:
            raise UnsafePickleError(
                f"refusing to load: the pickle asks for {module}.{name}, which is not on the "
                "allow-list of plain-data types (loading it could run code from the file)")
        return factory()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing to load: the pickle uses persistent ids "
                                "(is this a torch.save file with its zip wrapper removed?)")


def safe_load(file: BinaryIO) -> Any:
    """Unpickle ``file`` with :class:`SafeUnpickler`; corrupt data -> :class:`PhospheneError`."""
    try:
        return SafeUnpickler(file).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, RuntimeError) as exc:
        raise PhospheneError(f"corrupt or truncated pickle ({type(exc).__name__}: {exc})") from exc
