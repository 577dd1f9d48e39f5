"""Control surfaces: the routes (the one table of OSC addresses and what each does), the OSC
wire format and server, MIDI input."""
