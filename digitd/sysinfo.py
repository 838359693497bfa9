"""Process memory figures that mean what they say.

`resource.getrusage().ru_maxrss` is useless for a freshly spawned process on Linux: it keeps
the parent's high-water mark from before exec. /proc/self/status VmHWM belongs to the
current address space, and writing 5 to /proc/self/clear_refs resets it, so a benchmark
can measure the pipeline alone, without the memory its stream generator used.
"""

from __future__ import annotations

import resource
from pathlib import Path


def _status_kb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process image (MB)."""
    kb = _status_kb("VmHWM")
    if kb is None:  # not Linux: the best the platform offers
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0


def reset_peak_rss() -> bool:
    """Restart the peak at the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
