"""phosphene.live: the real-time loop — audio in/out, analysis, controls, OSC, MIDI, engine."""
