"""Configuration: every section of the file can also be set from the environment."""

from __future__ import annotations

import pytest

from exchange.config import NodeConfig, load_config


def test_every_section_is_reachable_by_environment() -> None:
    sections = [
        name
        for name, f in NodeConfig.model_fields.items()
        if isinstance(f.annotation, type) and name != "config_dir"
    ]
    assert {"ingest", "search", "http", "log"} <= set(sections)
    cfg = load_config(
        None,
        environ={
            "EXCHANGE_INGEST_OFFLOAD_MIN_BYTES": "0",
            "EXCHANGE_INGEST_VERIFY_PROCESSES": "3",
            "EXCHANGE_SEARCH_INDEXER": "false",
            "EXCHANGE_SEARCH_BATCH_SIZE": "50",
            "EXCHANGE_HTTP_MAX_BATCH": "100",
        },
    )
    assert cfg.ingest.offload_min_bytes == 0 and cfg.ingest.verify_processes == 3
    assert cfg.search.indexer is False and cfg.search.batch_size == 50
    assert cfg.http.max_batch == 100


def test_bad_environment_value_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="verify_processes"):
        load_config(None, environ={"EXCHANGE_INGEST_VERIFY_PROCESSES": "many"})
