"""QM9 replay oracle: labels are QM9's own B3LYP/6-31G(2df,p) values, looked up.

The molecule is found in QM9 by bodisc's identity (the InChIKey of its canonical SMILES
without stereo); QM9 rows that share it (stereoisomers) resolve to the lowest QM9 index,
the row a QM9 pool holds (:mod:`bodisc.chem.pool`). Only rows with the molecule's
formula are compared, so a look-up costs milliseconds once their records are cached.

``property`` (an option) chooses the label, in the units of
:data:`bodisc.data.QM9_TARGETS`: ``dipole`` (D), ``alpha`` (Angstrom^3), ``gap``,
``homo``, ``lumo`` (eV). A molecule that is not in QM9 fails with ``not in QM9``.
Calls are free (``cost`` 0.001): this is the harness for replaying a campaign whose
answers are known, not a calculation.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from bodisc.errors import MoleculeFailure
from bodisc.oracle import Oracle

__all__ = ["QM9Oracle", "QM9Options"]

_ELEMENTS = ("C", "H", "N", "O", "F")


class QM9Options(BaseModel):
    """Options of :class:`QM9Oracle`.

    Attributes:
        property: Which QM9 label: ``dipole``, ``alpha``, ``gap``, ``homo`` or ``lumo``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    property: Literal["dipole", "alpha", "gap", "homo", "lumo"] = "dipole"


@lru_cache(maxsize=8)
def _table(column: str) -> Any:
    """QM9's label column and each row's formula (see :func:`_formula`)."""
    from bodisc.data import load_qm9

    table = load_qm9(["smiles", "elements", column])
    elements = table["elements"].astype(str)
    counts = [elements.str.count(f"'{e}'").astype(str) for e in _ELEMENTS]
    formula = counts[0]
    for part in counts[1:]:
        formula = formula + "-" + part
    table["formula"] = formula
    return table.drop(columns="elements")


@lru_cache(maxsize=4096)
def _by_smiles(column: str, formula: str) -> dict[str, list[int]]:
    """QM9 rows of one formula by canonical SMILES without stereo (bodisc's form)."""
    from rdkit import Chem

    table = _table(column)
    rows = table[table["formula"] == formula]
    out: dict[str, list[int]] = {}
    for index, smiles in rows["smiles"].items():
        mol = Chem.MolFromSmiles(str(smiles))
        if mol is None:
            continue
        Chem.RemoveStereochemistry(mol)
        out.setdefault(Chem.MolToSmiles(mol, isomericSmiles=False), []).append(int(index))
    return out


def _formula(smiles: str) -> str:
    """Counts of C, H, N, O, F joined by ``-`` (``""`` for other elements)."""
    from rdkit import Chem

    from bodisc.chem.molecule import parse_smiles

    mol = Chem.AddHs(parse_smiles(smiles))
    counts = Counter(a.GetSymbol() for a in mol.GetAtoms())
    if set(counts) - set(_ELEMENTS):
        return ""
    return "-".join(str(counts.get(e, 0)) for e in _ELEMENTS)


class QM9Oracle(Oracle):
    """A QM9 B3LYP label (the ``property`` option) looked up by the molecule's identity."""

    name: ClassVar[str] = "qm9"
    property: ClassVar[str] = "dipole"
    unit: ClassVar[str] = "D"
    cost: ClassVar[float] = 0.001
    Options: ClassVar[type[BaseModel]] = QM9Options

    @classmethod
    def returns(cls, options: BaseModel) -> tuple[str, str]:
        """The property the options choose, and its unit."""
        from bodisc.data import QM9_TARGETS

        prop = options.property  # type: ignore[attr-defined]
        return prop, QM9_TARGETS[prop].unit

    def evaluate(self, smiles: str) -> tuple[float, dict[str, Any]]:
        """QM9's value of the chosen property for one molecule.

        Args:
            smiles: SMILES of the molecule.

        Returns:
            The label, and ``{"qm9_index": the QM9 row}``.

        Raises:
            MoleculeFailure: ``not in QM9`` when no QM9 row is this molecule.
        """
        from bodisc.chem.molecule import record_from_smiles
        from bodisc.data import QM9_TARGETS

        column = QM9_TARGETS[self.options.property].column  # type: ignore[attr-defined]
        table = _table(column)
        record = record_from_smiles(smiles)
        formula = _formula(smiles)
        # the rows with the same canonical SMILES first (cheap); the molecule's identity
        # is still checked by InChIKey, over all rows of its formula if need be
        rows = _by_smiles(column, formula).get(record.smiles, []) if formula else []
        matches = _same_key(rows, record.inchikey)
        if not matches and formula:
            rows = list(table.index[table["formula"] == formula])
            matches = _same_key(rows, record.inchikey)
        if not matches:
            raise MoleculeFailure(f"not in QM9 ({len(rows)} QM9 molecules of its formula)")
        index = matches[0]
        return float(table.at[index, column]), {"qm9_index": int(index)}


def _same_key(rows: list[int], inchikey: str) -> list[int]:
    """The QM9 indices among ``rows`` whose record has this InChIKey, ascending."""
    from bodisc.chem.pool import qm9_records

    records = qm9_records(rows)
    return sorted(i for i, rec in records.items() if rec is not None and rec[0] == inchikey)
