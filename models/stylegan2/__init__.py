"""A plain-PyTorch StyleGAN2 generator with NVlabs stylegan2-ada-pytorch's state_dict layout."""

from .config import GeneratorConfig
from .generator import Generator

__all__ = ["Generator", "GeneratorConfig"]
