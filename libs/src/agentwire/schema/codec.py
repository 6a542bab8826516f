"""orjson encoding of every agentwire message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

M = TypeVar("M", bound=BaseModel)

_OPTIONS = orjson.OPT_UTC_Z


class DecodeError(ValueError):
    """A record's bytes are not the message they claim to be."""


def dumps(value: Any) -> bytes:
    """Encode plain data (dicts of str/int/float/datetime...) as JSON bytes."""
    return orjson.dumps(value, option=_OPTIONS)


def encode(message: BaseModel) -> bytes:
    """Encode a schema model as compact JSON (None fields omitted)."""
    return orjson.dumps(message.model_dump(mode="python", exclude_none=True), option=_OPTIONS)


def encode_many(messages: Sequence[BaseModel]) -> bytes:
    """Encode schema models as one JSON array (a frame), each element as ``encode`` would."""
    return orjson.dumps([m.model_dump(mode="python", exclude_none=True) for m in messages], option=_OPTIONS)


def decode(model: type[M], data: bytes | None) -> M:
    """Decode JSON bytes into ``model``; raise DecodeError on anything malformed."""
    if data is None:
        raise DecodeError("record has no value")
    try:
        return model.model_validate(orjson.loads(data))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise DecodeError(f"cannot decode {model.__name__}: {exc}") from exc


def decode_as(adapter: TypeAdapter[Any], data: bytes | None) -> Any:
    """Decode JSON bytes with a TypeAdapter (for discriminated unions)."""
    if data is None:
        raise DecodeError("record has no value")
    try:
        return adapter.validate_python(orjson.loads(data))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise DecodeError(f"cannot decode: {exc}") from exc
