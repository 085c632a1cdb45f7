"""Progress on stderr: Keras' bar on a terminal, plain lines elsewhere.

Keras' Progbar draws with backspaces, carriage returns and ANSI colours whenever Python runs on POSIX,
terminal or not, so `train ... 2> log` filled logs with escape codes. Progress(total) draws that bar only when
stderr is a terminal; otherwise (a log, a pipe, CI) it prints a plain line at most every `every` seconds and
at the end, or nothing with quiet_if_not_tty (listings whose output is the table, not the wait).
"""

import contextlib
import sys
import time


class Progress:
    """update(current, values=[(name, number), ...]) with current in 0..total; enabled=False: silent."""

    def __init__(self, total, unit="step", stateful=(), quiet_if_not_tty=False, every=30.0, stream=None,
                 enabled=True):
        self.total, self.unit, self.every = int(total), unit, float(every)
        self.stream = stream or sys.stderr
        tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar, self.plain = None, enabled and not tty and not quiet_if_not_tty
        if tty:
            import keras

            self.bar = keras.utils.Progbar(self.total, stateful_metrics=list(stateful), unit_name=unit)
        self._last = None

    def update(self, current, values=()):
        if self.bar is not None:
            with contextlib.redirect_stdout(self.stream):  # Progbar writes to stdout, which may carry results
                self.bar.update(current, list(values))
            return
        if not self.plain:
            return
        now = time.monotonic()
        if self._last is None:  # the start: a baseline, no line
            self._last = now
            return
        if current < self.total and now - self._last < self.every:
            return
        self._last = now
        shown = " ".join(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}"
                         for name, value in values)
        print(f"{self.unit} {current}/{self.total} ({100 * current / max(self.total, 1):.0f}%)"
              + (f" {shown}" if shown else ""), file=self.stream, flush=True)
