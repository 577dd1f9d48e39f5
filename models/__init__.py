"""phosphene.models: the StyleGAN2 generator and checkpoint loading; pregeneration models."""


def __getattr__(name):
    if name == "load_generator":
        # Lazy re-export: `import phosphene.models` stays cheap (no torch) until a loader is used.
        from phosphene.models.loading import load_generator

        return load_generator
    raise AttributeError(f"module 'phosphene.models' has no attribute {name!r}")
