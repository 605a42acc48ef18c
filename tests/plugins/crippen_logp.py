"""my_oracles.py: label molecules with RDKit's Crippen logP (stand-in for your program)."""
from pydantic import BaseModel, ConfigDict, Field
from rdkit import Chem
from rdkit.Chem import Crippen

from bodisc.errors import MoleculeFailure
from bodisc.oracle import Oracle


class LogPOptions(BaseModel):  # [oracle.options], validated with the campaign file
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_heavy_atoms: int = Field(30, ge=1)


class CrippenLogP(Oracle):
    name = "crippen_logp"
    property = "logp"  # what [objective] property must name
    unit = ""
    cost = 0.01  # relative to the xTB dipole oracle (1.0)
    Options = LogPOptions

    def evaluate(self, smiles: str) -> float:
        mol = Chem.MolFromSmiles(smiles)
        if mol.GetNumHeavyAtoms() > self.options.max_heavy_atoms:
            raise MoleculeFailure(f"more than {self.options.max_heavy_atoms} heavy atoms")
        return Crippen.MolLogP(mol)
