"""Sampling profiles of a server process with py-spy, and their top functions.

``recording(pid, path)`` runs ``py-spy record`` (collapsed stacks) for
the duration of a ``with`` block; ``python -m tests.bench.profile FILE [N]`` prints the top N
functions of such a file by own time and by total time, as the share of all samples.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"


@contextmanager
def recording(pid: int, path: Path, rate: int = 250) -> Iterator[None]:
    """Sample ``pid`` at ``rate`` Hz into ``path`` while the block runs (pausing it briefly per sample)."""
    spy = subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--output", str(path), "--format", "raw",
                            "--rate", str(rate)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attached before the window opens
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=60)
        if spy.returncode not in (0, -signal.SIGINT) and not path.exists():
            raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")


def top(path: Path, count: int = 25) -> str:
    """A Markdown table of the functions with the most own and total samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, weight = line.rpartition(" ")
        if not stack or not weight.isdigit():
            continue
        n = int(weight)
        frames = stack.split(";")
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    rows = ["| own % | total % | function |", "|---:|---:|---|"]
    for frame, n in own.most_common(count):
        rows.append(f"| {100 * n / samples:.1f} | {100 * total[frame] / samples:.1f} | `{frame}` |")
    rows += ["", "| total % | function (most inclusive, below the event loop) |", "|---:|---|"]
    loop = ("_run_once", "run_forever", "run_until_complete", "Runner.run", "<module>", "main (", "run (",
            "Handle._run")
    inclusive = [(f, n) for f, n in total.most_common() if not any(m in f for m in loop)]
    for frame, n in inclusive[:count]:
        rows.append(f"| {100 * n / samples:.1f} | `{frame}` |")
    return f"{samples} samples\n\n" + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(top(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25))
