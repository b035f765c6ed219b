"""CPU time and memory of the processes a benchmark runs, read from /proc (Linux)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man proc).
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of the process in MiB."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * _PAGE / 2**20


def pids_where(matches: Callable[[str], bool]) -> list[int]:
    """Processes whose command line (arguments joined by spaces) `matches`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if matches(command):
            found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU seconds used by named groups of processes between `start()` and `read()`."""

    def __init__(self, groups: Mapping[str, Callable[[], list[int]]]) -> None:
        self._groups = groups
        self._before: dict[str, dict[int, float]] = {}

    def _now(self) -> dict[str, dict[int, float]]:
        return {
            name: {pid: cpu_seconds(pid) for pid in find()} for name, find in self._groups.items()
        }

    def start(self) -> None:
        self._before = self._now()

    def read(self) -> dict[str, float]:
        after = self._now()
        used = {}
        for name, pids in after.items():
            before = self._before.get(name, {})
            used[name] = round(sum(t - before.get(pid, 0.0) for pid, t in pids.items()), 2)
        return used
