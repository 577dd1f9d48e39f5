"""Where pregeneration runs: CUDA when present, else the CPU.

Deliberately not MPS (unlike the live generator): coqui-tts and transformers' Jukebox use ops
that Apple's backend lacks or gets wrong, and a failure hours into a Jukebox run is the worst
kind.
"""

from phosphene.errors import PhospheneError


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise PhospheneError("--device cuda: no CUDA GPU is available")
    return device
