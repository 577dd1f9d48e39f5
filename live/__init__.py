"""phosphene.live: the real-time side, one subpackage per concern.

- ``audio``     devices, input/output streams, ring buffer, file source, clip playback
- ``analysis``  the streaming analyzer (level, onsets, bands, tempo) and its tools
- ``control``   the routes (every address and what it does), OSC wire and server, MIDI
- ``show``      the pure core: show, director, parameters, mappings, keyframes, presets
- ``runtime``   the session used by live, render and replay; the engine's threads; recording
"""
