"""The processor's RocksDB memory bound holds when a database is reopened (a restart).

Upstream behaviour guarded here: faust-streaming opens a rocksdict database with its options
alone, and rocksdict (since RocksDict PR #30, "Automatically load latest options") reopens an
existing database with the column family's options from its OPTIONS file — which carry no block
cache (a fresh 8 MB one) and RocksDB's default write buffers. The first test shows it (if it
starts failing, rocksdict changed and the workaround may go); the second shows ours holds.
"""

from __future__ import annotations

from pathlib import Path

from faust.stores.rocksdb import RocksDBOptions

from agentwire.processor.tables import BoundedRocksDBOptions

CACHE = 256 * 1024
WRITE_BUFFER = 128 * 1024
UPSTREAM_DEFAULT_CACHE = 8 * 1024 * 1024


def capacities(options: RocksDBOptions, path: Path) -> list[int]:
    """The block cache capacity of a fresh database, then of the same database reopened."""
    found = []
    for _ in range(2):
        db = options.open(path)
        db[b"key"] = b"value" * 100
        found.append(db.property_int_value("rocksdb.block-cache-capacity"))
        db.close()
    return found


def test_faust_alone_loses_the_block_cache_bound_on_reopen(tmp_path: Path) -> None:
    options = RocksDBOptions(block_cache_size=CACHE, write_buffer_size=WRITE_BUFFER, use_rocksdict=True)
    assert capacities(options, tmp_path / "db") == [CACHE, UPSTREAM_DEFAULT_CACHE]


def test_bounded_options_keep_it(tmp_path: Path) -> None:
    options = BoundedRocksDBOptions(block_cache_size=CACHE, write_buffer_size=WRITE_BUFFER, use_rocksdict=True)
    assert capacities(options, tmp_path / "db") == [CACHE, CACHE]
