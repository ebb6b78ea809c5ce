"""What `qw up` prints: process logs prefixed with the process name, and the table — redrawn live on a
terminal (rich Live), or printed as plain lines when the output is a pipe or a file.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from queueworker.local.view import Row, table

PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta", "bright_green")
PLAIN_LINES_EVERY = 10.0


class Output:
    def __init__(self, live: bool | None = None, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.live_enabled = self.console.is_terminal if live is None else live
        self._live: Live | None = None
        self._colors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._footer = ""
        self._rows: list[Row] = []
        self._last_plain: tuple[float, tuple[object, ...]] = (0.0, ())

    def __enter__(self) -> Output:
        if self.live_enabled:
            self._live = Live(
                self._renderable(),
                console=self.console,
                refresh_per_second=4,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def _color(self, name: str) -> str:
        with self._lock:
            if name not in self._colors:
                self._colors[name] = PALETTE[len(self._colors) % len(PALETTE)]
            return self._colors[name]

    def log(self, name: str, line: str) -> None:
        """One line of a process's output (or of `qw up` itself), prefixed with its name."""
        text = Text(f"{name:>12} | ", style=self._color(name))
        text.append(line)
        self.console.print(text, soft_wrap=True)

    def info(self, line: str, style: str = "bold") -> None:
        self.console.print(Text(line, style=style), soft_wrap=True)

    def _renderable(self) -> Group:
        return Group(table(self._rows), Text(self._footer, style="dim"))

    def update(self, rows: list[Row], footer: str) -> None:
        self._rows, self._footer = rows, footer
        if self._live is not None:
            self._live.update(self._renderable())
            return
        # Not a terminal: one line per QueueWorker when something moved, and every few seconds.
        now = time.monotonic()
        key = tuple((r.running, r.desired, r.backlog == 0, r.crashed) for r in rows)
        if key == self._last_plain[1] and now - self._last_plain[0] < PLAIN_LINES_EVERY:
            return
        self._last_plain = (now, key)
        for r in rows:
            wait = "-" if r.oldest_wait is None else f"{r.oldest_wait:.1f}s"
            rate = "-" if r.throughput is None else f"{r.throughput:.1f}"
            self.log(
                "qw up",
                f"{r.name}: backlog {r.backlog if r.backlog is not None else '-'}, oldest wait "
                f"{wait}/{r.target_wait:g}s, workers {r.running}/{r.desired}, busy "
                f"{r.busy_slots}/{r.total_slots}, {rate} tasks/s",
            )

    def print_table(self, rows: list[Row], title: str | None = None) -> None:
        self.console.print(table(rows, title=title))
