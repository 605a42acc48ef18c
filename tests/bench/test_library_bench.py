"""The library benchmark: a real featurisation killed with SIGKILL and restarted, checked."""

from __future__ import annotations

import pytest

from bodisc.bench.library import kill_and_resume, write_library


@pytest.mark.slow
def test_kill_and_resume_counts_what_the_ledger_shows(tmp_path):
    smi = tmp_path / "lib.smi"
    assert write_library(smi, 40, seed=3) == 40
    again = tmp_path / "again.smi"
    write_library(again, 40, seed=3)
    assert smi.read_text() == again.read_text()  # seeded sample
    r = kill_and_resume(smi, tmp_path / "run", workers=1, kill_at=0.3, chunk_size=4,
                        poll_s=0.05)
    assert 0 < r["committed_at_kill"] < 40  # the kill landed midway
    assert r["restart_skipped"] == r["committed_at_kill"]
    assert r["recomputed_committed"] == 0 and r["computed_twice_after_restart"] == 0
    assert r["computed_after_restart"] == 40 - r["committed_at_kill"]
    # at most the chunk being filled (< 4) and the molecule in the one worker
    assert r["recomputed_uncommitted"] <= 4
    assert r["in_cache"] == 40 and r["duplicates_in_cache"] == 0
