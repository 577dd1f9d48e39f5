"""phosphene: a microphone drives a StyleGAN2 generator through an OpenGL effect chain.

Subpackages (each a top-level folder of the repository, see DESIGN.md):

- ``phosphene.models``  StyleGAN2 generator and checkpoint loading; pregeneration models
- ``phosphene.live``    the real-time loop: audio in/out, analysis, controls, OSC, MIDI
- ``phosphene.render``  OpenGL effect chain, windows, headless contexts, video files
- ``phosphene.presets`` YAML presets shipped with the package
"""

__version__ = "0.1.0"
