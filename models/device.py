"""Which torch device a job runs on: the one device picker for live, render and pregeneration."""

from __future__ import annotations

from phosphene.errors import PhospheneError


def pick_device(name: str = "auto", *, allow_mps: bool = True):
    """``auto`` -> cuda, else mps (when ``allow_mps``), else cpu; an explicit device must exist.

    Returns a ``torch.device``. Pregeneration passes ``allow_mps=False``: coqui-tts and
    transformers' Jukebox use ops that Apple's backend lacks or gets wrong, and a failure hours
    into a Jukebox run is the worst kind.
    """
    import torch  # heavy: imported when a device is actually picked

    mps = getattr(torch.backends, "mps", None)
    mps_available = mps is not None and mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if allow_mps and mps_available:
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise PhospheneError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PhospheneError(f"device {name!r}: CUDA is not available on this machine")
    if device.type == "mps" and not mps_available:
        raise PhospheneError(f"device {name!r}: MPS is not available on this machine")
    return device
