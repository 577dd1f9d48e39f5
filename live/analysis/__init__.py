"""The streaming analyzer and its parts: level envelopes, onsets, tempo, settings, file analysis, plots.

Pure numpy: no torch, GL, sockets or audio devices (a test reads the imports)."""
