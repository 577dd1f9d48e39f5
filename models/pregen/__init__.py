"""Offline pregeneration of bank material: YourTTS voice cloning (``voice``), Jukebox music
(``music`` + ``jukebox_sampling``) and MusicGen (``musicgen``). Heavy libraries (coqui-tts,
transformers) are imported inside the functions that need them."""
