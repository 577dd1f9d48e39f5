"""phosphene.presets: YAML presets shipped with the package (read with importlib.resources)."""
