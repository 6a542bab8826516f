"""Typed application keys of the ingest app."""

import asyncio

from aiohttp import web

from agentwire.auth import Authenticator
from agentwire.ingest.faults import FaultHook
from agentwire.ingest.interactions import Interactions
from agentwire.ingest.ratelimit import RateLimiter
from agentwire.ingest.sessions import SessionService
from agentwire.ingest.tasks import TaskService
from agentwire.service.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
AUTH = web.AppKey("auth", Authenticator)
TASKS = web.AppKey("tasks", TaskService)
LIMITER = web.AppKey("rate_limiter", RateLimiter)
INTERACTIONS = web.AppKey("interactions", Interactions)
SESSIONS = web.AppKey("sessions", SessionService)
CHAT_SLOTS = web.AppKey("chat_slots", asyncio.Semaphore)  # chat completions followed at once
FAULT = web.AppKey("fault_hook", FaultHook)
