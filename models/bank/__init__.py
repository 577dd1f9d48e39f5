"""The clip bank: a folder of loudness-normalised clips at one sample rate, a ``bank.json``
manifest with full provenance, and the analyzer's feature timeline beside every clip.

The live engine uses the small read API (``Bank(path)``, ``.names()``, ``.get(name)``,
``.load_audio(name)``, ``.load_features(name)``); pregeneration and ``phosphene bank import``
use ``.add(...)`` on a ``Bank(path, compute_timeline=...)`` given the live analyzer's
``phosphene.live.analysis.clip_timeline.compute_timeline`` (models never import live).
"""

from phosphene.models.bank.names import BankNameError, validate_name, name_from_filename
from phosphene.models.bank.store import Bank, BankEntry, BankError

__all__ = ["Bank", "BankEntry", "BankError", "BankNameError", "validate_name",
           "name_from_filename"]
