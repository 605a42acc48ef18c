"""The chunked columnar descriptor cache: commits, reopening, failures, killed writers."""

from __future__ import annotations

import numpy as np
import pytest

from bodisc.runtime.columnar import ColumnarCache, recipe_digest


def key(i: int) -> str:
    """An InChIKey-shaped string (27 characters)."""
    return f"K{i:013d}-AAAAAAAAAA-N"


NAMES = ("a", "b", "c")


def test_append_and_reopen_gather_across_chunks(tmp_path):
    cache = ColumnarCache(tmp_path, {"recipe": 1}, NAMES)
    X1 = np.arange(12, dtype=float).reshape(4, 3)
    X2 = -np.arange(6, dtype=float).reshape(2, 3)
    cache.append([key(i) for i in range(4)], X1, {key(99): "xtb: no SCF"})
    cache.append([key(10), key(11)], X2)
    assert len(cache) == 6 and cache.written == 7 and len(cache.chunks) == 2
    again = ColumnarCache(tmp_path, {"recipe": 1}, NAMES)  # index rebuilt from disk
    assert len(again) == 6 and again.failures == {key(99): "xtb: no SCF"}
    X, found = again.vectors([key(11), key(2), key(50)])
    assert found.tolist() == [True, True, False]
    np.testing.assert_array_equal(X[0], X2[1])
    np.testing.assert_array_equal(X[1], X1[2])
    assert np.isnan(X[2]).all()
    assert again.known([key(0), key(99), key(50)]) == {key(0), key(99)}
    assert key(3) in again and key(99) not in again
    keys, M = again.matrix()
    assert keys.tolist() == sorted(k.encode() for k in [*map(key, range(4)), key(10),
                                                        key(11)])
    assert M.shape == (6, 3)


def test_recipe_names_the_folder(tmp_path):
    a = ColumnarCache(tmp_path, {"seed": 0}, NAMES)
    b = ColumnarCache(tmp_path, {"seed": 1}, NAMES)
    assert a.folder != b.folder and a.folder.name.endswith(recipe_digest({"seed": 0}))
    a.append([key(1)], [[1.0, 2.0, 3.0]])
    assert len(ColumnarCache(tmp_path, {"seed": 1}, NAMES)) == 0
    assert (a.folder / "recipe.json").exists()


def test_float32_storage(tmp_path):
    cache = ColumnarCache(tmp_path, {}, NAMES, dtype="float32")
    cache.append([key(1)], [[1 / 3, 2.0, 3.0]])
    stored = np.load(next(cache.folder.glob("*.values.npy")))
    assert stored.dtype == np.float32
    X, _ = ColumnarCache(tmp_path, {}, NAMES, dtype="float32").vectors([key(1)])
    assert X.dtype == np.float64 and X[0, 0] == np.float32(1 / 3)
    with pytest.raises(ValueError, match="float32 or float64"):
        ColumnarCache(tmp_path, {}, NAMES, dtype="int64")


def test_a_chunk_without_its_keys_file_was_never_committed(tmp_path):
    """A writer killed between its files leaves values without keys, or temporaries."""
    cache = ColumnarCache(tmp_path, {}, NAMES)
    cache.append([key(1)], [[1.0, 2.0, 3.0]])
    np.save(cache.folder / "chunk-0000001-deadbeef.values.npy", np.ones((5, 3)))
    (cache.folder / ".half.tmp").write_bytes(b"partial")
    again = ColumnarCache(tmp_path, {}, NAMES)
    assert len(again) == 1 and again.chunks == cache.chunks
    assert not (cache.folder / ".half.tmp").exists()


def test_first_commit_wins_and_a_later_vector_clears_a_failure(tmp_path):
    cache = ColumnarCache(tmp_path, {}, NAMES)
    cache.append([key(1)], [[1.0, 1.0, 1.0]], {key(2): "timeout after 1 s"})
    cache.append([key(1), key(2)], [[9.0, 9.0, 9.0], [2.0, 2.0, 2.0]])
    for c in (cache, ColumnarCache(tmp_path, {}, NAMES)):
        X, found = c.vectors([key(1), key(2)])
        assert found.all() and X[0, 0] == 1.0 and X[1, 0] == 2.0
        assert c.failures == {} and len(c) == 2


def test_empty_append_writes_nothing(tmp_path):
    cache = ColumnarCache(tmp_path, {}, NAMES)
    assert cache.append([], np.zeros((0, 3))) is None
    assert cache.chunks == () and len(cache) == 0
    X, found = cache.vectors([key(1)])
    assert not found.any()


def test_a_reader_leaves_a_live_writers_temporary_file_and_clears_a_dead_ones(tmp_path):
    """Opening the cache while another process writes must not break that writer."""
    import os
    import subprocess
    import sys
    import time

    cache = ColumnarCache(tmp_path, {"kind": "t"}, ["a", "b"])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        writing = cache.folder / f".{live.pid}-abc.tmp"
        left = cache.folder / f".{int(dead.stdout)}-def.tmp"
        old = cache.folder / f".{live.pid}-old.tmp"
        for path in (writing, left, old):
            path.write_bytes(b"partial")
        hour_ago = time.time() - 7200
        os.utime(old, (hour_ago, hour_ago))
        ColumnarCache(tmp_path, {"kind": "t"}, ["a", "b"])  # a reader opens it
        assert writing.exists()  # the live writer's file survives
        assert not left.exists() and not old.exists()  # leftovers are cleared
    finally:
        live.kill()
        live.wait()
