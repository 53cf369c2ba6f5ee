"""How much memory a device has free, for refusing sizes before anything is allocated.

On a CPU: the kernel's ``MemAvailable``, capped by the container's cgroup limit when there is one (a process in a
container with 8 GiB is killed at 8 GiB whatever the host has). On CUDA: the driver's free memory on that device.
None where the system does not say (then nothing is refused in advance).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _cgroup_room() -> int | None:
    for limit_file, usage_file in CGROUP_FILES:
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:  # v1 writes a huge number for "none"
            return max(limit - usage, 0)
    return None


def available_memory() -> int | None:
    """Bytes of CPU memory free for new allocations (None where the system does not say)."""
    free = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            free = None
    room = _cgroup_room()
    if room is not None:
        free = room if free is None else min(free, room)
    return free


def device_free_memory(device: Any) -> int | None:
    """Bytes free on ``device`` (a ``torch.device`` or its name): CPU memory, or a CUDA device's free memory."""
    import torch

    device = torch.device(device)
    if device.type == "cpu":
        return available_memory()
    if device.type == "cuda" and torch.cuda.is_available():
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except RuntimeError:
            return None
    return None


def gib(n: float) -> str:
    """``n`` bytes for people: 512 MiB, 3.2 GiB, 1.5e+05 GiB."""
    if n < 1 << 30:
        return f"{n / (1 << 20):.0f} MiB"
    value = n / (1 << 30)
    return f"{value:.1f} GiB" if value < 1e5 else f"{value:.1e} GiB"
