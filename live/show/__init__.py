"""The pure core: show, director, latent modes, parameters, mappings, latents, keyframes, presets
and the event timeline.

Deterministic and free of I/O: no torch, GL, sockets, audio devices or runtime (a test reads
the imports)."""
