"""The display's budget: the effect chain must never starve the generator (or the analysis).

On a machine without a GPU the effect chain runs on the CPU (Mesa llvmpipe), and one frame of a
1024x1024 chain takes longer than a display period: drawn flat out, the display takes every
core and the GIL, the generator gets a few percent and the picture stops following the music
(measured: 36 generator frames in 22 s, onset -> GAN frame 2.5 s). So the display loop asks
this governor, after each frame, how long to wait before the next one and at what scale to
draw:

- while the generator is *behind* (the GAN frame on screen shows audio older than
  ``behind_s``, or it makes fewer than ``min_generator_fps`` frames a second), the display
  takes at most ``share`` of the wall time: after a frame that took
  ``d`` seconds to draw it waits at least ``d * (1 - share) / share``;
- if that would bring the display below ``min_rate_hz``, the canvas is drawn smaller
  (``scale`` steps down to ``min_scale``; the window scales it up), since a smaller chain is
  cheaper per frame and keeps the effects' reaction time;
- once the generator has kept up for ``recover_s``, the scale steps back up.

Changes are at least ``hold_s`` apart, so the canvas does not flicker between sizes. On a
fast GPU the chain costs little, nothing kicks in, and the display runs at its own rate.
Pure logic on measured times: the display loop feeds it, the report shows what it did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCALE_STEP = 0.7071          # each step halves the pixel count


@dataclass
class DisplayGovernor:
    period_s: float                  # the display's own pace (1 / fps, or the refresh cap)
    share: float = 0.5               # most of the wall time the display takes when behind
    behind_s: float = 0.5            # a GAN frame older than this (audio time) is "behind"
    min_generator_fps: float = 10.0  # ... and so is a generator slower than this
    min_rate_hz: float = 12.0        # below this rate, draw smaller instead of slower
    min_scale: float = 0.25
    hold_s: float = 2.0              # least time between two scale changes
    recover_s: float = 5.0           # keeping up this long steps the scale back up
    scale: float = 1.0
    draw_s: float = 0.0              # smoothed time to draw one frame
    behind: bool = False
    # what it did, for the report
    lowest_scale: float = 1.0
    scale_changes: int = 0
    behind_total_s: float = 0.0
    throttled_frames: int = 0
    _last_change: float = field(default=-1e9, repr=False)
    _keeping_up_since: float | None = field(default=None, repr=False)
    _last_now: float | None = field(default=None, repr=False)
    _rate_mark: tuple[float, int] | None = field(default=None, repr=False)
    generator_fps: float | None = None   # measured over the last second or so

    def after_frame(self, now: float, draw_s: float, gan_age_s: float | None,
                    generated: int | None = None) -> float:
        """A frame took ``draw_s`` to draw and showed a GAN frame ``gan_age_s`` behind the
        audio (None before the first), with ``generated`` frames finished so far; returns the
        least time from this frame's start to the next one's (the display period now).
        ``scale`` may have changed: the caller resizes the canvas."""
        self.draw_s = draw_s if self.draw_s == 0.0 else 0.8 * self.draw_s + 0.2 * draw_s
        if self._last_now is not None and self.behind:
            self.behind_total_s += now - self._last_now
        self._last_now = now
        if generated is not None:
            if self._rate_mark is None:
                self._rate_mark = (now, generated)
            elif now - self._rate_mark[0] >= 1.0:
                self.generator_fps = (generated - self._rate_mark[1]) / (now - self._rate_mark[0])
                self._rate_mark = (now, generated)
        slow = self.generator_fps is not None and self.generator_fps < self.min_generator_fps
        self.behind = slow or (gan_age_s is not None and gan_age_s > self.behind_s)
        period = self.period_s
        if self.behind:
            self._keeping_up_since = None
            budget_period = self.draw_s / self.share
            if budget_period > period:
                period = budget_period
                self.throttled_frames += 1
            if 1.0 / period < self.min_rate_hz and self.scale > self.min_scale:
                self._change(now, max(self.scale * SCALE_STEP, self.min_scale))
        else:
            if self._keeping_up_since is None:
                self._keeping_up_since = now
            if self.scale < 1.0 and now - self._keeping_up_since >= self.recover_s:
                self._change(now, min(self.scale / SCALE_STEP, 1.0))
                self._keeping_up_since = now
        return period

    def _change(self, now: float, scale: float) -> None:
        if now - self._last_change < self.hold_s or abs(scale - self.scale) < 1e-6:
            return
        self.scale = scale
        self._last_change = now
        self.scale_changes += 1
        self.lowest_scale = min(self.lowest_scale, scale)

    def scaled(self, size: tuple[int, int]) -> tuple[int, int]:
        """``size`` at the current scale (even, at least 16 pixels a side)."""
        return tuple(max(16, int(round(side * self.scale / 2)) * 2) for side in size)

    def summary(self) -> dict:
        return {"scale": round(self.scale, 3), "lowest_scale": round(self.lowest_scale, 3),
                "scale_changes": self.scale_changes,
                "generator_behind_s": round(self.behind_total_s, 2),
                "throttled_frames": self.throttled_frames,
                "draw_ms": round(1000.0 * self.draw_s, 2)}
