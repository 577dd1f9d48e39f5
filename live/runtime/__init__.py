"""Running a show: the session (preset -> analyzer -> generator -> show) used by live, offline
render and replay; the engine's threads; the generator worker; report; recording."""
