"""Settings of every agentwire service, read once in ``main()`` and passed down.

Sources, strongest first: constructor arguments, environment variables
(``AGENTWIRE_<SECTION>__<KEY>``, e.g. ``AGENTWIRE_STREAMING__BUFFER_SIZE=200``), the YAML
file named by ``AGENTWIRE_CONFIG`` (default ``config/agentwire.yaml`` when it exists),
then the defaults below. ``ENVIRONMENT`` and ``GATEWAY_SKIP_AUTH`` keep Shannon's names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from agentwire.schema import DEFAULT_PARTITIONS, Topics

DEV_ENVIRONMENTS = frozenset({"dev", "development", "test"})


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "agentwire"
    partitions: int = Field(DEFAULT_PARTITIONS, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1)
    retention_hours: float = Field(168.0, gt=0)  # events, commands, raw events: ≥ retention.tasks_days
    # how long a producer retries one batch before failing it; the services then send it again
    # (an outage longer than this loses nothing, it only wakes the resend)
    request_timeout_ms: int = Field(30_000, ge=1000)

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    max_body_bytes: int = Field(1_048_576, ge=1024)
    read_your_writes_timeout_s: float = Field(2.0, gt=0)
    # aiohttp closes a connection that has no request in progress for this long: an idle keep-alive
    # connection, or one still sending its request head (slowloris). Streams in progress are not idle.
    idle_timeout_s: float = Field(75.0, gt=0)
    # connections the kernel completes before the server accepts them (capped by net.core.somaxconn):
    # past it a burst of connects is dropped silently and the dropped clients wait on dead sockets
    listen_backlog: int = Field(1024, ge=1)
    # aiohttp's access log, one line per request: off by default, as every request is already counted
    # (agentwire_http_requests_total, with its route, status and latency); on, it costs ingest ≈ 10 % of
    # its CPU under load (docs/performance.md, "Ingest: task submissions")
    access_log: bool = False


class StreamingSettings(BaseModel):
    buffer_size: int = Field(100, ge=1)
    flush_interval_ms: int = Field(100, ge=0)
    keepalive_s: float = Field(15.0, gt=0)
    ws_ping_s: float = Field(20.0, gt=0)
    unknown_workflow_wait_s: float = Field(2.0, gt=0)
    retry_ms: int = Field(1000, ge=0)
    history_readers: int = Field(4, ge=1)
    recent_cache_mb: int = Field(64, ge=0)  # edge: recent decoded events per workflow, 0 disables
    recent_cache_events: int = Field(20_000, ge=0)  # edge: at most this many cached events per workflow


class RetentionSettings(BaseModel):
    """How long a task lives after it ends (docs/state.md, "Lifetimes")."""

    tasks_days: float = Field(7.0, gt=0)  # then its state is tombstoned and every route answers 404
    sweep_interval_s: float = Field(60.0, gt=0)  # how often each indexer tombstones expired tasks

    @property
    def tasks_seconds(self) -> float:
        return self.tasks_days * 86400.0


class StoreSettings(BaseModel):
    """The query store: PostgreSQL holding the index of the task-state topic (docs/state.md)."""

    dsn: str = "postgresql://agentwire@127.0.0.1:5432/agentwire"
    pool_size: int = Field(10, ge=1, le=100)
    connect_timeout_s: float = Field(60.0, gt=0)  # how long a starting service retries the database


class AuthSettings(BaseModel):
    keys_file: str | None = None
    stream_token_secret: str = ""
    stream_token_ttl_s: int = Field(300, ge=10)


class RateLimitSettings(BaseModel):
    per_minute: int = Field(60, ge=1)


class IngestSettings(BaseModel):
    # Fault injection for tests and `make chaos` (refused outside dev/test): the process kills
    # itself with SIGKILL when its ``fault_after``-th submission reaches ``fault_point``.
    fault_point: Literal["before_send", "after_send", "after_ack", "after_store"] | None = None
    fault_after: int = Field(1, ge=1)


class RunnerSettings(BaseModel):
    group_id: str = "agentwire-runner"
    default_speed: float = Field(1.0, gt=0)
    drain_grace_s: float = Field(10.0, ge=0)
    approval_timeout_s: float = Field(600.0, gt=0)  # context.approval_timeout_s overrides it per task
    ops_port: int = Field(9101, ge=0, le=65535)


class OpenAISettings(BaseModel):
    """The OpenAI-compatible API (``/v1/models``, ``/v1/chat/completions``) on ingest."""

    default_model: str = "agentwire-chat"
    max_concurrent: int = Field(64, ge=1)  # chat completions one ingest process follows at once (429 beyond)


class ProcessorSettings(BaseModel):
    app_id: str = "agentwire-processor"
    default_token_budget: int = Field(100_000, ge=1)
    budget_thresholds: list[int] = Field(default_factory=lambda: [50, 80, 100])
    workflow_timeout_s: float = Field(120.0, gt=0)
    timeout_check_interval_s: float = Field(5.0, gt=0)
    data_dir: str = ".data/processor"  # the tables' RocksDB files (rebuilt from their changelogs when lost)
    # Memory the tables' RocksDB may use for write buffers and block caches, split over the
    # partitions a worker holds: the processor's memory does not grow with history.
    table_memory_mb: int = Field(8, ge=4)
    # Rows of ended workflows past retention.tasks_days are tombstoned by a scan of this many rows
    # per retention.sweep_interval_s (one pass over the whole table every rows/this intervals).
    sweep_rows: int = Field(20_000, ge=1)
    # A shipped batch holds at most this many raw records, and records wait at most this long for
    # the reader to catch up with its partitions (at light load a batch ships at once).
    batch_max_records: int = Field(1000, ge=1)
    batch_max_wait_ms: float = Field(20.0, gt=0)
    # Rows, task states and acknowledgements of delivered batches are written together, at most this
    # often (clients already have the events; a crash replays at most this much more).
    rows_interval_ms: float = Field(50.0, ge=0)
    # The raw topic's fetches: the broker answers once this many bytes are waiting, or after this
    # long. 1 byte answers every record at once (each costs a fetch, a hand-over from faust's consumer
    # thread and a batch); 16 KB / 5 ms lets a trickle arrive in groups: at 1,000 events/s of runner
    # plays 25 % less processor CPU per event, at 100 events/s ≈ 2 ms more latency (docs/performance.md).
    fetch_min_bytes: int = Field(16384, ge=1)
    fetch_max_wait_ms: int = Field(5, ge=0)
    ops_port: int = Field(9102, ge=0, le=65535)
    # Fault injection for tests (refused outside dev/test): hold faust's recovery this long after it
    # sought the stream partitions to their committed offsets, before it resumes the flow: the
    # window in which faust-streaming 0.15.3 reads records it then clears (tests/integration/
    # test_processor_restart.py).
    fault_seek_hold_s: float = Field(0.0, ge=0)

    @field_validator("budget_thresholds")
    @classmethod
    def _sorted_percentages(cls, value: list[int]) -> list[int]:
        if not value or any(not 0 < v <= 100 for v in value):
            raise ValueError("processor.budget_thresholds: percentages in 1..100")
        return sorted(set(value))


class Settings(BaseSettings):
    """All of agentwire's settings; each service reads the sections it needs."""

    model_config = SettingsConfigDict(
        env_prefix="AGENTWIRE_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    environment: str = Field(
        "production", validation_alias=AliasChoices("ENVIRONMENT", "AGENTWIRE_ENVIRONMENT")
    )
    skip_auth: bool = Field(
        False, validation_alias=AliasChoices("GATEWAY_SKIP_AUTH", "AGENTWIRE_SKIP_AUTH")
    )
    # The asyncio event loop implementation of every service process: "uvloop" (libuv, faster
    # socket I/O; measured in docs/performance.md) or "asyncio" (the standard library's).
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    streaming: StreamingSettings = Field(default_factory=StreamingSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    processor: ProcessorSettings = Field(default_factory=ProcessorSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)

    @model_validator(mode="after")
    def _events_outlive_tasks(self) -> Settings:
        # A task's stream replays its events for as long as the task lives.
        if self.kafka.retention_hours * 3600.0 < self.retention.tasks_seconds:
            raise ValueError(
                f"kafka.retention_hours ({self.kafka.retention_hours}) must be at least retention.tasks_days "
                f"({self.retention.tasks_days}) in hours: events must live as long as their tasks"
            )
        return self

    @property
    def is_dev(self) -> bool:
        return self.environment.lower() in DEV_ENVIRONMENTS

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def _config_file() -> Path | None:
    named = os.environ.get("AGENTWIRE_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(f"AGENTWIRE_CONFIG names {named!r}, which is not a file")
        return path
    default = Path("config/agentwire.yaml")
    return default if default.is_file() else None


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and config file (see module docstring)."""
    return Settings(**overrides)  # type: ignore[arg-type]
