"""A plain SSE reader for tests: frames exactly as a curl user would see them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import orjson


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)

    @property
    def json(self) -> dict:  # type: ignore[type-arg]
        return orjson.loads("\n".join(self.data))


def parse(lines: Iterator[str]) -> Iterator[Frame | str]:
    """Yield Frames and comment lines (as ``": ..."`` strings)."""
    frame = Frame()
    for line in lines:
        if line == "":
            if frame.data or frame.event:
                yield frame
            frame = Frame()
        elif line.startswith(":"):
            yield line
        elif line.startswith("id:"):
            frame.id = line[3:].strip()
        elif line.startswith("event:"):
            frame.event = line[6:].strip()
        elif line.startswith("data:"):
            frame.data.append(line[5:].strip())


def read_stream(base_url: str, params: dict[str, str], headers: dict[str, str] | None = None,
                timeout: float = 60.0) -> tuple[list[Frame], list[str]]:
    """Read an SSE stream to its end; return the frames and comments."""
    frames: list[Frame] = []
    comments: list[str] = []
    with httpx.stream("GET", f"{base_url}/api/v1/stream/sse", params=params, headers=headers or {},
                      timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for item in parse(response.iter_lines()):
            if isinstance(item, str):
                comments.append(item)
            else:
                frames.append(item)
    return frames, comments
