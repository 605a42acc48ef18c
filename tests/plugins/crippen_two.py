"""A user oracle that returns two properties from one call: Crippen logP and the TPSA."""
from rdkit import Chem
from rdkit.Chem import Crippen, Descriptors

from bodisc.oracle import Oracle


class CrippenTwo(Oracle):
    name = "crippen_two"
    property = "logp"
    unit = ""
    properties = {"tpsa": "A^2"}  # the further property one call gives
    cost = 0.01

    def evaluate(self, smiles: str) -> dict[str, float]:
        mol = Chem.MolFromSmiles(smiles)
        return {"logp": Crippen.MolLogP(mol), "tpsa": Descriptors.TPSA(mol)}
