"""Tell checkpoint containers apart by their first bytes, not by their file extension.

People rename files (``network-snapshot.pkl`` saved as ``.pt``, ``.pth`` for anything), so the
container is read from its magic bytes:

- ``PK\\x03\\x04``: a zip archive — what ``torch.save`` writes since torch 1.6;
- ``\\x80`` + protocol 2..5: a pickle; if it starts with torch's legacy magic number it is an
  old-style ``torch.save`` file, otherwise a plain pickle (NVlabs / TensorFlow networks);
- an 8-byte little-endian length followed by ``{``: a safetensors header.
"""

from __future__ import annotations

import struct
from pathlib import Path

ZIP = "zip"
PICKLE = "pickle"
TORCH_LEGACY = "torch-legacy"
SAFETENSORS = "safetensors"

# pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)[2:]: torch's legacy-format magic number.
_TORCH_LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"

# Other files people may point us at, to name them in the error.
_KNOWN_OTHER = [
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras weights?)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GGUF", "a GGUF model file"),
    (b"\x1f\x8b", "a gzip-compressed file (unpack it first)"),
    (b"<!DOCTYPE", "an HTML page (a download that returned a web page?)"),
    (b"<html", "an HTML page (a download that returned a web page?)"),
]


def sniff(path: Path) -> tuple[str | None, str]:
    """``(container, description)``; container is None when it is none we read."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return None, "an empty file"
    if head.startswith(b"PK\x03\x04"):
        return ZIP, "a zip archive (torch.save)"
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        if head[2:].startswith(_TORCH_LEGACY_MAGIC[: len(head) - 2]) and len(head) >= 14:
            return TORCH_LEGACY, "a legacy torch.save file"
        return PICKLE, f"a pickle (protocol {head[1]})"
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and header_len < (1 << 27):  # truncation is reported by the reader
            return SAFETENSORS, "a safetensors file"
    for magic, description in _KNOWN_OTHER:
        if head.lower().startswith(magic.lower()):
            return None, description
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return None, "a text file"
    return None, f"an unrecognised binary file (starts with {head[:8].hex(' ')})"
