"""glibc's moving mmap threshold, and the fix every service applies at start (service/lifecycle.py).

Each case runs in a fresh interpreter: rounds of 1 MB buffers (an aiokafka fetch's size class) with
small long-lived objects allocated between them, then the growth of the process's main heap. By
default glibc maps the first round and, once they are freed, raises its threshold above them: the
next rounds come from the heap, and the small objects between them keep the freed space resident.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from pathlib import Path
from agentwire.service.lifecycle import fix_malloc_mmap_threshold

def heap_kb():
    rss, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if "-" in line.split(" ", 1)[0] and not line.endswith(":"):
            inside = line.endswith("[heap]")
        elif inside and line.startswith("Rss:"):
            rss += int(line.split()[1])
    return rss

if sys.argv[1] == "fixed":
    assert fix_malloc_mmap_threshold()
before = heap_kb()
kept = []
for _ in range(3):
    buffers = []
    for _ in range(40):
        buffers.append(bytearray(1 << 20))
        kept.append(bytearray(1024))
    del buffers
print(heap_kb() - before)
"""


def heap_growth_mb(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024


def test_glibc_keeps_freed_buffers_in_the_heap_by_default() -> None:
    assert heap_growth_mb("default") > 30


def test_with_the_threshold_fixed_freed_buffers_leave_the_process() -> None:
    assert heap_growth_mb("fixed") < 5
