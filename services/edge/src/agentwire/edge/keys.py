"""Typed application keys of the edge app."""

from aiohttp import web

from agentwire.auth import Authenticator
from agentwire.edge.hub import LiveHub
from agentwire.kafka.history import EventLog
from agentwire.service.settings import Settings

SETTINGS = web.AppKey("edge_settings", Settings)
AUTH = web.AppKey("edge_auth", Authenticator)
HUB = web.AppKey("hub", LiveHub)
LOG = web.AppKey("event_log", EventLog)
CLIENTS = web.AppKey("clients", dict)  # live stream requests, dropped on shutdown
