"""Audio in and out: devices, PortAudio streams, the lock-free ring buffer, file sources, clip playback."""
