"""The oracle protocol and the registry of oracles.

An oracle turns molecules into labels. The contract (after MolPAL): a batch of molecules
in, and for each molecule either one value or one failure with its reason out. A failure
is a value of the result, never an exception that ends the campaign.

Oracles are found by name:

* in the ``bodisc.oracles`` entry-point group (bodisc's own oracles, the repository's
  ``oracles/`` folder installed as ``bodisc.builtin_oracles``, are registered there
  exactly like a user's), or
* as ``package.module:Class`` or ``path/to/file.py:Class``.

Each oracle class declares its ``Options`` (a pydantic model validated with the campaign
file), the ``property`` it returns with its ``unit``, and a relative ``cost``. One
calculation often gives several properties (an xTB optimisation gives the dipole and the
HOMO-LUMO gap): ``properties`` declares the further ones, and ``evaluate`` then returns a
mapping of every property to its value. A campaign with several objectives or constraints
reads them from one call; one that asks for a property its oracle does not declare is
refused before anything runs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from bodisc.errors import MoleculeFailure, RegistryError

ENTRY_POINT_GROUP = "bodisc.oracles"


class NoOptions(BaseModel):
    """Option model of an oracle that takes no options."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class OracleResult:
    """The outcome of one oracle call for one molecule.

    Attributes:
        value: The label, or ``None`` when the call failed.
        failure: Why it failed (one line), or ``None`` on success.
        seconds: Wall time of the call in the worker.
        extras: Further numbers the oracle reports (e.g. energy, steps), JSON-able.
        properties: Every property the call gave, name -> value (the oracle's own
            ``property`` included); empty for a failure.
    """

    value: float | None
    failure: str | None = None
    seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the call produced a label."""
        return self.failure is None and self.value is not None


class Oracle(ABC):
    """Base class of every oracle.

    Subclasses set the class attributes and implement :meth:`evaluate` for one molecule;
    raising :class:`~bodisc.errors.MoleculeFailure` (or any exception) marks that molecule
    failed with the message as reason. ``evaluate_batch`` runs them one by one and never
    raises.
    """

    name: ClassVar[str] = ""
    property: ClassVar[str] = ""
    unit: ClassVar[str] = ""
    cost: ClassVar[float] = 1.0
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: True for an oracle that labels whatever the objective names (``external``):
    #: it declares no property, and :meth:`returns` may give ``""``.
    any_property: ClassVar[bool] = False
    #: Further properties one call gives, name -> unit (beyond ``property``); with them
    #: :meth:`evaluate` returns a mapping of every property to its value.
    properties: ClassVar[dict[str, str]] = {}

    def __init__(self, options: BaseModel | dict[str, Any] | None = None) -> None:
        if not isinstance(options, BaseModel):
            options = self.Options.model_validate(options or {})
        self.options = options

    @classmethod
    def returns(cls, options: BaseModel) -> tuple[str, str]:
        """The property and unit this oracle returns with these options.

        The class attributes by default; an oracle whose options choose the property
        (e.g. ``qm9``) overrides it.
        """
        return cls.property, cls.unit

    @classmethod
    def provides(cls, options: BaseModel) -> dict[str, str]:
        """Every property one call gives with these options, name -> unit.

        The property of :meth:`returns` first, then ``properties``; empty for an oracle
        that labels whatever it is asked (``any_property``).
        """
        prop, unit = cls.returns(options)
        out = {prop: unit} if prop else {}
        out.update({k: v for k, v in cls.properties.items() if k not in out})
        return out

    @abstractmethod
    def evaluate(self, smiles: str) -> Any:
        """Label one molecule.

        Args:
            smiles: Canonical SMILES of the molecule.

        Returns:
            The value, or the value and a dict of extras; an oracle that declares
            ``properties`` returns a mapping property -> value instead of the value (it
            holds the oracle's own ``property``), optionally with the extras.

        Raises:
            MoleculeFailure: With a one-line reason when the molecule cannot be labelled.
        """

    def evaluate_batch(self, smiles: Sequence[str]) -> list[OracleResult]:
        """Label a batch; one result per molecule, failures as values."""
        return [run_one(self, s) for s in smiles]


def run_one(oracle: Oracle, smiles: str) -> OracleResult:
    """Call ``oracle.evaluate`` on one molecule and turn any outcome into a result."""
    import math
    import time

    start = time.perf_counter()
    try:
        out = oracle.evaluate(smiles)
    except MoleculeFailure as exc:
        return OracleResult(None, str(exc), time.perf_counter() - start)
    except MemoryError:
        return OracleResult(None, "out of memory: the worker's memory limit was reached",
                            time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - a failing molecule must not end a campaign
        return OracleResult(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    value, extras = out if isinstance(out, tuple) else (out, {})
    seconds = time.perf_counter() - start
    prop = oracle.returns(oracle.options)[0]
    if isinstance(value, Mapping):
        found = dict(value)
        if prop not in found:
            return OracleResult(None, f"oracle gave no {prop!r} (it gave: "
                                f"{', '.join(map(str, found)) or 'nothing'})", seconds)
    else:
        found = {prop: value}
    values: dict[str, float] = {}
    for name, v in found.items():
        try:
            number = float(v)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            what = "value" if name == prop else f"{name!r}"
            return OracleResult(None, f"oracle returned a non-finite {what} ({v!r})", seconds)
        values[str(name)] = number
    primary = values.pop(prop)
    properties = {prop: primary, **values} if prop else values
    return OracleResult(primary, None, seconds, dict(extras), properties)


def registered_oracles() -> dict[str, str]:
    """Names in the ``bodisc.oracles`` entry-point group, mapped to their targets."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def resolve_oracle(name: str) -> type[Oracle]:
    """Find an oracle class by registered name, ``module:Class`` or ``file.py:Class``.

    Raises:
        RegistryError: If nothing of that name exists; the message lists the registered
            names and the other accepted forms.
    """
    registered = registered_oracles()
    target = registered.get(name, name)
    if ":" not in target:
        known = ", ".join(sorted(registered)) or "(none)"
        raise RegistryError(
            f"unknown oracle; registered: {known}; or give 'package.module:Class' "
            f"or 'path/to/file.py:Class'"
        )
    module_name, _, class_name = target.rpartition(":")
    try:
        module = _import_target(module_name)
    except Exception as exc:  # noqa: BLE001
        raise RegistryError(f"cannot import {module_name!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Oracle)):
        raise RegistryError(f"{target!r} is not a bodisc.oracle.Oracle subclass")
    if not cls.property and not cls.any_property:
        raise RegistryError(f"{target!r} does not declare the property it returns")
    return cls


def _import_target(module_name: str) -> Any:
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no such file {path}")
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
        mod_name = f"bodisc_user_oracle_{digest}"
        if mod_name in sys.modules:
            return sys.modules[mod_name]
        spec = importlib.util.spec_from_file_location(mod_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(module_name)
