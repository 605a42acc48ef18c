"""Featurisation with its cache: QMex descriptors of molecules, kept in the campaign store.

A molecule's descriptors are computed once per descriptor set (the tier and the recipe's
settings) and stored, failures with their reason; every later iteration and a resumed
campaign read them back. Pool campaigns (``[pool] source = "qm9"``) take xTB on the
pool's own geometries from the shipped or disk-cached QM9 descriptors instead.

Library campaigns (``[pool] source = "library.smi"``, :mod:`bodisc.chem.library`) compute
the whole library's descriptors once, with the campaign's own per-molecule function and
recipe, into a columnar cache shared by every campaign on that library and recipe; the
store then copies the vectors of the molecules the campaign draws, as for QM9 (so the
report and diagnostics read them from the store as for any campaign). The library's
descriptor set is ``library-<tier>/<digest of method and conformer seed>``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bodisc.config import CampaignConfig, parse_proxy
from bodisc.failpoints import failpoint
from bodisc.store import CampaignStore

#: ``execute(kind, settings, fn, tasks, molecule_of, timeout_s)``: runs tasks in the
#: campaign's executor (through its shared result cache) and yields their outcomes.
Execute = Callable[..., Iterator[Any]]


class Featuriser:
    """The campaign's descriptors: which ones, from which cache entry, in which columns.

    Args:
        config: The validated campaign.
    """

    def __init__(self, config: CampaignConfig) -> None:
        from bodisc.descriptors import TIERS, default_descriptors, tier_of

        self.config = config
        self.names = tuple(config.descriptors.names or default_descriptors())
        # The cache holds a molecule's whole tier, so campaigns that use other descriptors
        # of the same tier (and the same recipe settings) reuse it.
        self.tier = tier_of(self.names)
        self.tier_names = TIERS[self.tier]
        self.columns = [self.tier_names.index(n) for n in self.names]
        key = json.dumps([config.descriptors.method, config.descriptors.conformer_seed])
        self.descriptor_set = f"qmex-{self.tier}/" + hashlib.sha1(key.encode()).hexdigest()[:10]
        if config.pool is not None and config.pool.is_library:  # the library's own cache
            self.descriptor_set = (f"library-{self.tier}/"
                                   + hashlib.sha1(key.encode()).hexdigest()[:10])
        elif config.pool is not None:  # xTB on the pool's own (QM9 B3LYP) geometries
            self.descriptor_set = f"qm9geom-{self.tier}"
        self._pool: Any = None

    def pool(self) -> Any:
        """The campaign's candidate pool.

        A :class:`bodisc.chem.pool.QM9Pool`, or for a library file a
        :class:`bodisc.chem.library.LibraryPool`, whose molecules not yet in the library
        cache are featurised here first (the campaign's executor settings, a progress
        bar on stderr).
        """
        assert self.config.pool is not None
        if self._pool is None and self.config.pool.is_library:
            self._pool = self._library_pool()
        elif self._pool is None:
            from bodisc.chem.pool import QM9Pool

            self._pool = QM9Pool(self.config.pool.subset, self.config.random_seed)
        return self._pool

    def _library_pool(self) -> Any:
        """Open the library: read it, featurise what the cache lacks, build the pool."""
        from bodisc.chem.library import LibraryPool

        cfg = self.config
        assert cfg.pool is not None
        ex = cfg.execution
        executor: Any
        if ex.kind == "dask":
            from bodisc.execution.dask import DaskExecutor

            executor = DaskExecutor(ex.workers, ex.worker_memory_gb, ex.scheduler)
        else:
            from bodisc.execution.local import LocalExecutor

            executor = LocalExecutor(ex.workers, ex.worker_memory_gb)
        try:
            return LibraryPool.open(cfg.pool.library_path(), names=self.tier_names,
                                    conformer_seed=cfg.descriptors.conformer_seed,
                                    method=cfg.descriptors.method,
                                    executor=executor,
                                    timeout_s=ex.descriptor_timeout_s)
        finally:
            executor.close()

    def proxy_columns(self, text: str) -> dict[int, float]:
        """Descriptor column -> factor of a descriptor or signed sum (``"lumo - homo"``)."""
        columns: dict[int, float] = {}
        for name, factor in parse_proxy(text):
            column = self.names.index(name)
            columns[column] = columns.get(column, 0.0) + factor
        return columns

    def vectors(self, store: CampaignStore, it: int, keys: Sequence[str],
                smiles: Sequence[str], execute: Execute) -> dict[str, list[float]]:
        """The campaign's descriptors of the given molecules, cached or computed and cached.

        Args:
            store: The campaign store (the cache).
            it: The iteration asking (recorded with newly computed descriptors).
            keys: InChIKeys.
            smiles: Their SMILES.
            execute: Runs the descriptor tasks (see :data:`Execute`).

        Returns:
            InChIKey -> descriptor values in the order of :attr:`names`, for the molecules
            whose descriptors exist (failures are left out; their reasons are stored).
        """
        from bodisc.execution.tasks import descriptor_task

        cfg = self.config
        cached = store.descriptors_of(keys, self.descriptor_set)
        todo = [(k, s) for k, s in dict(zip(keys, smiles, strict=True)).items()
                if k not in cached]
        if cfg.pool is not None and todo:
            # pool members come from the pool's descriptors; other molecules (labels
            # from outside, [data] imports) are computed below like generated ones
            pool = self.pool()
            members = [k for k, _ in todo if k in pool]
            if members and cfg.pool.is_library:
                self._from_library(store, it, members, cached)
            elif members:
                self._from_pool(store, it, members, cached)
            todo = [(k, s) for k, s in todo if k not in cached]
        args = (tuple(self.tier_names), cfg.descriptors.conformer_seed)
        for out in execute("descriptors", self.descriptor_set, descriptor_task,
                           [(k, (s, *args)) for k, s in todo], {k: k for k, _ in todo},
                           cfg.execution.descriptor_timeout_s):
            if out.failure is None:
                vector, seconds = out.value
                store.put_descriptors(out.key, self.descriptor_set, vector, None, seconds, it)
                failpoint("descriptors")
                cached[out.key] = ("done", vector, None)
            else:
                store.put_descriptors(out.key, self.descriptor_set, None, out.failure,
                                      out.seconds, it)
                cached[out.key] = ("failed", None, out.failure)
        cols = self.columns
        return {k: [v[c] for c in cols] for k, (status, v, _) in cached.items()
                if status == "done" and v}

    def compute(self, keys: Sequence[str], smiles: Sequence[str], execute: Execute
                ) -> tuple[dict[str, list[float]], dict[str, str]]:
        """Descriptors of molecules computed now and kept nowhere (``Campaign.predict``).

        Returns:
            ``(vectors, failures)``: InChIKey -> values in the order of :attr:`names`,
            and InChIKey -> reason for the molecules that failed.
        """
        from bodisc.execution.tasks import descriptor_task

        cfg = self.config
        args = (tuple(self.tier_names), cfg.descriptors.conformer_seed)
        todo = dict(zip(keys, smiles, strict=True))
        vectors: dict[str, list[float]] = {}
        failures: dict[str, str] = {}
        for out in execute("descriptors", self.descriptor_set, descriptor_task,
                           [(k, (s, *args)) for k, s in todo.items()], {k: k for k in todo},
                           cfg.execution.descriptor_timeout_s):
            if out.failure is None:
                vectors[out.key] = [out.value[0][c] for c in self.columns]
            else:
                failures[out.key] = out.failure
        return vectors, failures

    def _from_pool(self, store: CampaignStore, it: int, keys: Sequence[str],
                   cached: dict[str, tuple[str, Any, Any]]) -> None:
        """Descriptors of pool molecules on their own geometries (disk-cached), stored."""
        from bodisc.data import qm9_descriptors

        pool = self.pool()
        index = {k: pool.get(k).index for k in keys if pool.get(k) is not None}
        frame = qm9_descriptors(list(index.values()), tier=self.tier,
                                workers=self.config.execution.workers)
        failures = frame.attrs["failures"]
        values = frame[list(self.tier_names)].to_numpy(dtype=float)
        row_of = {int(i): r for r, i in enumerate(frame.index)}
        for key, i in index.items():
            if i in failures:
                store.put_descriptors(key, self.descriptor_set, None, failures[i], 0.0, it)
                cached[key] = ("failed", None, failures[i])
            else:
                vector = values[row_of[int(i)]].tolist()
                store.put_descriptors(key, self.descriptor_set, vector, None, 0.0, it)
                cached[key] = ("done", vector, None)

    def _from_library(self, store: CampaignStore, it: int, keys: Sequence[str],
                      cached: dict[str, tuple[str, Any, Any]]) -> None:
        """Descriptors of library molecules from the library's columnar cache, stored."""
        pool = self.pool()
        X, found = pool.vectors(keys)
        for key, row, ok in zip(keys, X, found, strict=True):
            if ok:
                vector = [float(v) for v in row]
                store.put_descriptors(key, self.descriptor_set, vector, None, 0.0, it)
                cached[key] = ("done", vector, None)
            else:
                reason = pool.failures.get(key, "not a molecule of the library")
                store.put_descriptors(key, self.descriptor_set, None, reason, 0.0, it)
                cached[key] = ("failed", None, reason)
