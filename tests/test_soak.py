"""benchmarks/soak.py: its measurements (fast) and a short soak against a real server (slow)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "soak", Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py")
soak = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(soak)


def test_server_stats_reads_rss_and_open_files_of_a_process(tmp_path):
    before = soak.server_stats(os.getpid())
    with open(tmp_path / "f", "w"):
        during = soak.server_stats(os.getpid())
    assert before["rss_mib"] > 1 and during["fds"] == before["fds"] + 1
    assert soak.percentile([], 50) is None
    assert soak.percentile([1.0, 2.0, 3.0, 100.0], 50) == 2.5


@pytest.mark.slow
def test_short_soak_has_no_errors_and_keeps_the_index_intact():
    r = soak.soak(seconds=10, clients=2, max_requests=2000, n_files=12, churn=2)
    assert r["requests"] > 0 and r["errors"] == 0, r
    assert r["integrity_ok"] and r["items_end"] == r["items_expected"] and r["index_rounds"] >= 1
