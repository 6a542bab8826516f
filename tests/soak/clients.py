"""The soak's clients on aiohttp (a thousand streams in one load-generator process): an SSE reader
that resumes with Last-Event-ID after forced disconnects, and a WebSocket reader. Both tally what
they see in tests.chaos.client's ``Tally`` (seq 1..N once, in order, one terminal event, the end)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import orjson

from tests.chaos.client import SSE_TO_TYPE, Tally, frames


@dataclass
class Counts:
    """Totals across every client of the run."""

    forced: int = 0
    drops: int = 0
    error_responses: list[str] = field(default_factory=list)


def record(tally: Tally, event: dict[str, object], name: str) -> bool:
    """Tally one event; False for a repeat."""
    seq = int(str(event["seq"]))
    if seq <= tally.last_seq:
        tally.duplicated += 1
        return False
    if seq != tally.last_seq + 1:
        tally.gaps += seq - tally.last_seq - 1
        tally.errors.append(f"gap {tally.last_seq}->{seq}")
    tally.seqs.append(seq)
    tally.types.append(str(event.get("type") or SSE_TO_TYPE.get(name, name.upper().replace(".", "_"))))
    return True


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    async for raw in response.content:
        yield raw.decode().rstrip("\r\n")


async def read_sse(http: aiohttp.ClientSession, base_url: str, tally: Tally, counts: Counts, *,
                   resume_p: float, rng: random.Random) -> None:
    """Read the workflow to ``done``; with probability ``resume_p`` per event, cut and resume."""
    last_id: str | None = None
    while not tally.ended:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        forced = False
        try:
            async with http.get(f"{base_url}/api/v1/stream/sse", params={"workflow_id": tally.workflow_id},
                                headers=headers) as response:
                if response.status != 200:
                    counts.error_responses.append(f"SSE {response.status} {tally.workflow_id}")
                    return
                async for frame in frames(_lines(response)):
                    if frame.event == "done":
                        tally.ended = True
                        break
                    if frame.id is None:  # "Workflow not found": the edge does not know it (yet)
                        tally.not_found += 1
                        await asyncio.sleep(0.2)
                        break
                    if record(tally, orjson.loads(frame.data), str(frame.event)):
                        last_id = frame.id
                    if rng.random() < resume_p:
                        forced = True
                        break
        except (aiohttp.ClientError, TimeoutError) as exc:
            counts.drops += 1
            tally.errors.append(f"drop: {exc!r}")
            await asyncio.sleep(0.2)
            continue
        if forced:
            tally.forced += 1
            counts.forced += 1
        elif not tally.ended and tally.not_found == 0:
            tally.clean_close_without_done += 1
            return


async def read_ws(http: aiohttp.ClientSession, base_url: str, tally: Tally, counts: Counts) -> None:
    """Read the workflow over WebSocket until the server's close 1000 after STREAM_END."""
    url = base_url.replace("http://", "ws://") + "/api/v1/stream/ws"
    tally.edge = "ws"
    try:
        async with http.ws_connect(url, params={"workflow_id": tally.workflow_id}) as ws:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                event = orjson.loads(message.data)
                if event["type"] == "STREAM_END":
                    tally.ended = True
                    continue
                if "seq" not in event:  # "Workflow not found"
                    tally.not_found += 1
                    continue
                record(tally, event, str(event["type"]))
            if ws.close_code != 1000:
                tally.errors.append(f"ws closed {ws.close_code}")
    except aiohttp.WSServerHandshakeError as exc:
        counts.error_responses.append(f"WS {exc.status} {tally.workflow_id}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        counts.drops += 1
        tally.errors.append(f"ws drop: {exc!r}")
