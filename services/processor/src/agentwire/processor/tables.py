"""The processor's faust tables on RocksDB: options, reads and writes that name their partition.

The tables are co-partitioned with the raw topic, so every read and write here names the key's
partition itself. faust's Store otherwise finds a key through its current event, or searches only
the databases it opened for the partitions it counts as assigned — which misses rows written
before their changelog topic existed (a first start), and rows read from a timer or from the
pipeline's shipping task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import rocksdict
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksStore
from faust.types import TP

from agentwire.kafka import partition_for
from agentwire.processor.sending import Changelog, Records
from agentwire.schema import dumps
from agentwire.service.settings import Settings


class BoundedRocksDBOptions(RocksDBOptions):
    """Our RocksDB options for a table's partition databases, bounded in memory as a whole, and
    opened so that the bound holds on a restart too.

    - One block cache per table, shared by its partition databases (``block_cache_size`` is the
      table's whole budget), holding the data blocks read, every open file's index and bloom
      filter (RocksDB otherwise keeps those outside any cache: they grow with the history), and —
      through a write buffer manager charged to the same cache — the memtables of all the
      databases (half the budget at most, flushed beyond). RocksDB's own way to cap its memory
      with one number.
    - faust opens a rocksdict database with its options alone. rocksdict (since its PR #30,
      "Automatically load latest options") then takes the column family's options from the
      database's OPTIONS file when it exists — every restart — and those have no block cache (a
      fresh 8 MB one per database) and RocksDB's default 64 MB write buffers: the bound held on a
      first start only. Passing the options for the default column family as well makes rocksdict
      use them.
    """

    _cache: Any = None
    _write_buffers: Any = None

    def as_options(self) -> Any:
        if not self.use_rocksdict:
            return super().as_options()
        if self._cache is None:
            self._cache = rocksdict.Cache(self.block_cache_size)
            self._write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
                self.block_cache_size // 2, False, self._cache)
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(self._write_buffers)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(self._cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(table)
        return options

    def open(self, path: Path, *, read_only: bool = False) -> Any:
        if not self.use_rocksdict or read_only or self.ttl is not None:
            return super().open(path, read_only=read_only)
        db = rocksdict.Rdict(str(path), options=self.as_options(),
                             column_families={"default": self.as_options()})
        db.set_read_options(rocksdict.ReadOptions())
        return db

    def memory(self) -> dict[str, int]:
        """What RocksDB holds for this table: the shared cache's use (data, index and filter blocks,
        and the memtables charged to it) and the memtables alone."""
        if self._cache is None:
            return {"cache": 0, "memtables": 0}
        return {"cache": self._cache.get_usage(), "memtables": self._write_buffers.get_usage()}


def bound_memory(table: Any) -> None:
    """Make a RocksDB table's store open its databases with :class:`BoundedRocksDBOptions`."""
    store = table.data
    if isinstance(store, RocksStore):
        store.rocksdb_options = BoundedRocksDBOptions(**store.options, use_rocksdict=store.use_rocksdict)


def rocksdb_options(settings: Settings) -> dict[str, Any]:
    """RocksDB options for one table (a fresh dict: faust's Store consumes it).

    Half of ``table_memory_mb`` per table, all of it in the table's cache (memtables included).
    A partition database's write buffer may reach 1 MB (fewer, larger files than an even split of
    the memtable budget would give); the write buffer manager flushes when they add up to more.
    """
    table = settings.processor.table_memory_mb * 2**20 // 2
    return {"driver": "rocksdict", "write_buffer_size": min(2**20, table // 2), "max_write_buffer_number": 2,
            "block_cache_size": table}


def memory(table: Any) -> dict[str, int]:
    """RocksDB's memory for a table (see :meth:`BoundedRocksDBOptions.memory`); empty off RocksDB."""
    options = getattr(table.data, "rocksdb_options", None)
    return options.memory() if isinstance(options, BoundedRocksDBOptions) else {}


def stored(table: Any, partitions: int, key: str) -> Any:
    """A RocksDB table's value for ``key``, read from the key's own partition database."""
    value = table.data._db_for_partition(partition_for(key, partitions)).get(dumps(key))
    return orjson.loads(value) if value is not None else None


def stored_slice(table: Any, partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, Any]]:
    """Up to ``limit`` (encoded key, value) of a RocksDB table's partition, after ``after``.

    Each call seeks afresh: an iterator kept between calls would pin the database's memtables and
    files for as long as it lives.
    """
    store = table.data
    found: list[tuple[bytes, Any]] = []
    for key, value in store._db_for_partition(partition).items(from_key=after):
        if key == after or key == store.offset_key or value is None:
            continue
        found.append((key, orjson.loads(value)))
        if len(found) >= limit:
            break
    return found


def changelog(table: Any, partitions: int, rows: dict[str, dict[str, Any] | None]) -> Changelog:
    """Put rows in a table (None deletes) and return its changelog records: faust's own encoding,
    JSON key and value, and a tombstone for a deletion."""
    records: Records = {}
    store = table.data
    rocks = isinstance(store, RocksStore)
    for key, value in rows.items():
        partition = partition_for(key, partitions)
        encoded_key, encoded = dumps(key), None if value is None else dumps(value)
        if rocks:
            db = store._db_for_partition(partition)
            db.put(encoded_key, encoded) if encoded is not None else db.delete(encoded_key)
        elif value is None:
            store.pop(key, None)
        else:
            store[key] = value
        records.setdefault(partition, []).append((encoded_key, encoded))
    return Changelog(table.changelog_topic.get_topic_name(), records, store if rocks else None)


def remember_offsets(written: Changelog, last_offsets: dict[int, int]) -> None:
    """A changelog's records are in Kafka: its store remembers their offsets, so a restart with
    this data directory recovers only what was written after them."""
    if written.store is not None:
        for partition, offset in last_offsets.items():
            written.store.set_persisted_offset(TP(written.topic, partition), offset)


def estimated_rows(table: Any) -> int:
    """RocksDB's own estimate of the keys in a table's open databases (counting would read them all)."""
    store = table.data
    if not isinstance(store, RocksStore):
        return len(store)
    return sum(db.property_int_value("rocksdb.estimate-num-keys") or 0 for db in list(store._dbs.values()))
