"""phosphene.models: the StyleGAN2 generator and checkpoint loading; pregeneration models."""
