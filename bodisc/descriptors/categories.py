"""The 44 binary structure categories of ILR (Shimakawa, Kumada, Sato 2024), from RDKit.

ILR multiplies each QMex descriptor by indicators of a molecule's structure category.
This module computes those categories from a SMILES string, with exactly the column
names and order of the paper's ``bench_dGs_with_category.csv``. Every flag is computed on
the RDKit molecule with explicit hydrogens (``Chem.AddHs``), as the original did.

Agreement with the published table (631 molecules of ``shared/data/qmex_dGs``): 43 of 44
columns agree on every molecule; ``polar`` agrees on 613 of 631 (97.1 %); see ``polar``
below and ``docs/results/extrapolation_dGs.md``.

================  ==============================================================================
column            definition (1 when ...)
================  ==============================================================================
``polar``         the molecule has a permanent dipole by symmetry in some low-energy conformer:
                  NOT (some conformer, of 10 ETKDGv3 embeddings (seed 42) optimised with MMFF94,
                  has all its graph-symmetry classes of atoms centred on one point within
                  0.1 A). A molecule with two or more atoms that no graph automorphism moves
                  is polar without any 3D work. Embedding failure gives 1 (as the paper's
                  failed point group did)
``acid``          one of the 58 acidic-site SMARTS of MF-SuP-pKa (``_ACID_SMARTS``) matches
``base``          one of the 90 basic-site SMARTS of MF-SuP-pKa (``_BASE_SMARTS``) matches
``with_X``        the element X is present, X in H B C N O F Si P S Cl Br I
``argon``         a noble gas (He, Ne, Ar, Kr, Xe, Rn) is present
``halogen``       F, Cl, Br, I or At is present
``metal``         an element other than the 22 non-metals (H He B C N O F Ne Si P S Cl Ar As Se
                  Br Kr Te I Xe At Rn) is present
``other``         a non-metal outside H B C N O F Si P S Cl Br I and the noble gases (As Se Te At)
``cation``        the net formal charge is positive
``anion``         the net formal charge is negative
``ion``           some atom carries a formal charge (nitro groups drawn ``[N+](=O)[O-]``, ...)
``SINGLE``        a single bond is present (bonds to H count; always 1 with a hydrogen)
``DOUBLE``        a double bond is present (Kekulé-free RDKit bond types after sanitising)
``TRIPLE``        a triple bond is present
``AROMATIC``      an aromatic bond is present
``pi``            some bond is not single (double, triple or aromatic), i.e. some atom has
                  pi electrons (the original summed the pi counts of RDKit atom-pair codes;
                  identical on the benchmark set)
``conjugated``    RDKit marks some bond conjugated
``ring``          the molecule has a ring
``branch``        the canonical RDKit SMILES with explicit hydrogens contains a branch ``(``
``rot``           a rotatable bond matches RDKit's legacy strict SMARTS (``_ROTATABLE``;
                  excludes amide C-N, CF3, CCl3, CBr3, t-butyl; methyl rotors count because
                  hydrogens are explicit). RDKit >= 2023's ``CalcNumRotatableBonds`` default
                  differs (86.8 % agreement), hence the SMARTS
``spiro``         RDKit ``CalcNumSpiroAtoms`` > 0
``hba``           an atom matches RDKit's legacy ``CalcNumHBA`` SMARTS (``_HBA``: O/S with
                  restrictions, trivalent N not in an amide-like linkage, aromatic nH0/o/s).
                  The current RDKit definition differs on N-substituted pyrroles/imidazoles
``hbd``           RDKit ``CalcNumHBD`` > 0 (N-H or O-H)
``O_single``      SMARTS ``*O*`` (a two-connected oxygen; hydrogens count as neighbours)
``O_double``      SMARTS ``*=O``
``N_triple``      SMARTS ``*#N``
``amine``         SMARTS ``[NX3;H2,H1,H0;!$(NC=[!#6])]``
``alcohol``       SMARTS ``[OX2H]([#6X4])`` (OH on an sp3 carbon)
``ether``         SMARTS ``[OD2]([#6X4])[#6X4]`` (both carbons sp3)
``cyano``         SMARTS ``C#N``
``carboxylic``    SMARTS ``[#6]([CX3](=O)[OX2H1])``
``carbonyl``      SMARTS ``[$([CX3]=[OX1]),$([CX3+]-[OX1-])]``
``amide``         SMARTS ``[NX3][CX3](=[OX1])[#6]``
================  ==============================================================================

About ``polar``: the paper built one 3D geometry with Open Babel and called it polar when
pymatgen's point group (tolerance 0.3 A) was one of C1, Cs, Ci, Cn, Cnv, C*v or could not be
found. That result depends on the one geometry Open Babel happened to build (extended
chains anti, dimethyl disulfide planar); here "nonpolar" means that a low-energy conformer
has a centre that every symmetry-equivalent set of atoms is centred on, which is what an
inversion centre or several symmetry axes imply. The 18 disagreements: 14 molecules the
paper calls polar that have a nonpolar (D2h, D3h, C2h, ...) conformer here (naphthalene,
anthracene, biphenyl, p-benzoquinone, p-xylene, mesitylene, 2,6-dimethylnaphthalene,
1,2-dibromoethane, 1,2-dichloroethane, 1,4-dichlorobutane, N,N'-dimethylpiperazine,
ethylene dinitrate, 2,3-dimethylbutadiene, cyclopentane), and 4 the paper calls nonpolar
whose conformers here are all C2 or C1 (dimethyl and diethyl disulfide, cyclohexene,
9,10-dihydroanthracene). Ci, which the paper lists as polar, is nonpolar here.

The acid/base SMARTS are those of MF-SuP-pKa (Wu et al., ``data/smarts_pattern_ionized.txt``,
MIT licence, copyright 2022 wujialu), the file the ILR authors used; only whether any
pattern matches matters here. Their atom-map numbers are kept as published.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = ["CATEGORY_NAMES", "categories", "category_matrix"]

#: The 44 category columns, in the order of the paper's ``bench_dGs_with_category.csv``.
CATEGORY_NAMES: tuple[str, ...] = (
    "polar", "acid", "base",
    "with_H", "with_B", "with_C", "with_N", "with_O", "with_F", "with_Si", "with_P",
    "with_S", "with_Cl", "with_Br", "with_I",
    "argon", "halogen", "metal", "other", "cation", "anion", "ion",
    "SINGLE", "DOUBLE", "TRIPLE", "AROMATIC",
    "pi", "conjugated", "ring", "branch", "rot", "spiro", "hba", "hbd",
    "O_single", "O_double", "N_triple", "amine", "alcohol", "ether", "cyano",
    "carboxylic", "carbonyl", "amide",
)  # fmt: skip

_ELEMENTS = ("H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Br", "I")
_NOBLE = frozenset({"He", "Ne", "Ar", "Kr", "Xe", "Rn"})
_HALOGEN = frozenset({"F", "Cl", "Br", "I", "At"})
_NONMETAL_Z = frozenset({1, 2, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 33, 34, 35, 36, 52, 53,
                         54, 85, 86})  # fmt: skip
_OTHER = frozenset({"As", "Se", "Te", "At"})  # non-metals outside _ELEMENTS and _NOBLE

_GROUP_SMARTS: dict[str, str] = {
    "O_single": "*O*",
    "O_double": "*=O",
    "N_triple": "*#N",
    "amine": "[NX3;H2,H1,H0;!$(NC=[!#6])]",
    "alcohol": "[OX2H]([#6X4])",
    "ether": "[OD2]([#6X4])[#6X4]",
    "cyano": "C#N",
    "carboxylic": "[#6]([CX3](=O)[OX2H1])",
    "carbonyl": "[$([CX3]=[OX1]),$([CX3+]-[OX1-])]",
    "amide": "[NX3][CX3](=[OX1])[#6]",
}

_NOT_ROT = (
    "!$([NH]!@C(=O))&!D1&!$(*#*)&!$(C(F)(F)F)&!$(C(Cl)(Cl)Cl)&!$(C(Br)(Br)Br)"
    "&!$(C([CH3])([CH3])[CH3])"
)
#: RDKit's legacy ("strict", before 2023) rotatable-bond SMARTS.
_ROTATABLE = (
    f"[{_NOT_ROT}&!$([CD3](=[N,O,S])-!@[#7,O,S!D1])&!$([#7,O,S!D1]-!@[CD3]=[N,O,S])"
    f"&!$([CD3](=[N+])-!@[#7!D1])&!$([#7!D1]-!@[CD3]=[N+])]-,:;!@[{_NOT_ROT}]"
)

#: RDKit's legacy ``CalcNumHBA`` SMARTS (version 2.0.1).
_HBA = (
    "[$([O,S;H1;v2]-[!$(*=[O,N,P,S])]),$([O,S;H0;v2]),$([O,S;-]),"
    "$([N;v3;!$(N-*=!@[O,N,P,S])]),$([nH0,o,s;+0])]"
)

#: Acidic sites of MF-SuP-pKa (patterns 1 to 58 of ``smarts_pattern_ionized.txt``).
_ACID_SMARTS: tuple[str, ...] = (
    "[SX4:0](=[O:1])(=[O:2])([O:3]-[C,c,N,n:4])-[OX2:5]-[H:6]",
    "[SX4:0](=[O:1])(=[O:2])(-[C,c,N,n:3])-[OX2:4]-[H:5]",
    "[SX3:0](=[O:1])-[O:2]-[H:3]",
    "[c,n,o:0]-[C:1](=[O:2])-[O:3]-[H:4]",
    "[C:0](=[O:1])-[O:2]-[H:3]",
    "[C,c,N,n:0](=[O,S:1])-[SX2,OX2:2]-[H:3]",
    "[c,n:0]-[SX2:1]-[H:2]",
    "[C,N:0]-[SX2:1]-[H:2]",
    "[PX4:0](=[O:1])(-[OX2:2]-[H:3])(-[O+0:4])-[OX2:5]-[H:6]",
    "[PX4:0](=[O:1])(-[OX2:2]-[H:3])(-[C,c,N,n:4])-[OX2:5]-[H:6]",
    "[PX4:0](=[O:1])(-[O:2]-[H:3])(-[H:4])-[C,c:5]",
    "[c,n,o:0]-[O:1]-[H:2]",
    "[O:0]([$(C=O),$(C[Cl]),$(CF),$(C[Br]),$(CC#N):1])-[O:2]-[H:3]",
    "[C:0]-[O:1]-[O:2]-[H:3]",
    "[O:0]=[C;R:1]-[C;R:2]=[C;R:3]-[O:4]-[H:5]",
    "[C:0]=[C:1]-[O:2]-[H:3]",
    "[C:0]-[O:1]-[H:2]",
    "[C:0](=[O:1])-[N:2]-[O:3]-[H:4]",
    "[O,S:0]=[C;R:1]([$([#8]),$([#7]),$([#16]),$([#6][Cl]),$([#6]F),$([#6][Br]):2])"
    "-[N;R:3]([C;R:4]=[O,S:5])-[H:6]",
    "[O,S:0]=[C;R:1]-[N;R:2]([C;R:3]=[O,S:4])-[H:5]",
    "[F,Cl,Br,S,s,P,p:0][#6:1][CX3:2](=[O,S:3])-[NX3+0:4]([CX3:5]=[O,S:6])-[H:7]",
    "[O,S:0]=[CX3:1]-[NX3+0:2]([CX3:3]=[O,S:4])-[H:5]",
    "[C:0](=[O:1])-[N:2](-[Br,Cl,I,F,S,O,N,P:3])-[H:4]",
    "[C:0](=[O:1])-[N:2]-[H:3]",
    "[SX4:0](=[O:1])(=[O:2])-[NX3+0:3]-[H:4]",
    "[PX4:0](=[O:1])(-[C,c,N,n,F,Cl,Br,I:2])(-[C,c,N,n,F,Cl,Br,I:3])-[OX2:4]-[H:5]",
    "[PX4:0](=[O:1])(-[OX2:2]-[C,c,N,n,F,Cl,Br,I:3])(-[O+0:4]-[C,c,N,n,F,Cl,Br,I:5])"
    "-[OX2:6]-[H:7]",
    "[PX4:0](=[O:1])(-[OX2:2]-[C,c,N,n,F,Cl,Br,I:3])(-[C,c,N,n,F,Cl,Br,I:4])-[OX2:5]-[H:6]",
    "[n:0]-[H:1]",
    "[PX4:0](=[O:1])(=[O:2])(-[C,c,N,n:3])-[OX2:4]-[H:5]",
    "[C:0](-[C,c:1])=[NX2:2]-[O:3]-[H:4]",
    "[CX4:0]-[NX3:1](-[H:2])-[CX3:3](=[NX2:4])-[SH:5]",
    "[CX3:0](=[OX1:1])-[CX4:2]-[NX3:3](-[H:4])-[cX3:5]",
    "[CX3:0](=[OX1:1])-[CX4:2]-[NX3H1:3](-[H:4])-[CX3:5]=[NX2H0:6]",
    "[NX3:0](-[H:1])-[C:2]=[C:3]-[C:4](=[O:5])-[C:6]-[O:7]",
    "[c:0]-[NX3:1](-[H:2])-[C,n:3]",
    "[NX3:0]-[OX2:1]-[H:2]",
    "[SX4:0](=[O:1])(=[O:2])-[NX3:3]-[H:4]",
    "[NX2:0]-[NX2:1]=[C:2]-[NX3:3]-[H:4]",
    "[C:0]-[NX3:1](-[H:2])-[C:3](=[SX1:4])",
    "[C:0](-[C:1])(-[C:2])=[NX2:3]-[H:4]",
    "[C:0]=[NX2:1]-[NX3:2](-[H:3])-[c:4]",
    "[C:0]-[C:1](-[C,O:2])=[NX2:3]-[H:4]",
    "[cX3;r6:0]-[NX3:1]-[H:2]",
    "[C:0](=[O:1])-[CX4:2](-[H:3])(-[C:4])-[C:5](=[O:6])",
    "[PX4:0](=[O:1])(=[O:2])-[O:3]-[H:4]",
    "[CX4:0](-[H:1])(-[C:2]=[O:3])-[C:4]=[O:5]",
    "[C:0](=[S,O:1])-[NX3:2]-[H:3]",
    "[S:0]-[S:1](=[O:2])(=[O:3])-[O:4]-[H:5]",
    "[C:0]=[N:1]-[O:2]-[H:3]",
    "[C:0](-[N:1])(=[N:2])-[N:3](-[C:4])-[H:5]",
    "[NX2H0;r6:0]=[C;r6:1]-[C;r6:2](-[H:3])-[C:4]#[N:5]",
    "[C:0]=[NX2:1]-[H:2]",
    "[c,C:0]-[C:1](=[OX1:2])-[C:3]=[C:4]-[NX3:5]-[H:6]",
    "[N+,n+:0]-[H:1]",
    "[O+,S+:0]-[H:1]",
    "[B+0:0](-[OX2:1]-[H:2])-[OX2:3]-[H:4]",
    "[N+,n+:0]-[OX2:1]-[H:2]",
)

#: Basic sites of MF-SuP-pKa (patterns 59 to 148 of ``smarts_pattern_ionized.txt``).
_BASE_SMARTS: tuple[str, ...] = (
    "[N:0]-[C:1](-[N:2])=[NX2:3]-[H:4]",
    "[C:0](-[N:1])=[NX2+0:2]-[H:3]",
    "[c:0]-[NX3+0:1]([H:2])[H:3]",
    "[c:0]-[NX3+0:1]([H:2])[!H:3]",
    "[c:0]-[NX3+0:1]([!H:2])([!H:3])",
    "[C,c:0]-[O:1]-[NH2:2]",
    "[CX4:0]-[NX3:1]([CX4,c:2])([CX4,c:3])",
    "[C:0](-[C,c:1])=[NX2:2]-[O:3]-[H:4]",
    "[C:0]-[nX3;H0;+0:1]([C,c:2])([C,c:3])",
    "[c:0]:[nX2:1]:[c:2]",
    "[c:0]:[nX2:1]:[nX3:2]:[c:3]=[OX1:4]",
    "[CX4:0]-[NX3:1](-[H:2])-[CX4:3]",
    "[C:0](=[O:1])-[N:2](-[H:3])-[NX3:4](-[H:5])(-[H:6])",
    "[c:0]:[nX2:1]:[n:2]:[n:3]:[n:4]-[CX4:5]",
    "[CX4:0](-[CX4:1])(-[CX4:2])-[NH2:3]",
    "[CX3:0]=[NX2:1]-[CX4,SX4:2]",
    "[c:0]-[NH2:1]",
    "[!OX1:0][C,c:1]-[NX3:2](-[c:3])-[H:4]",
    "[C,c:0]-[NX2:1]=[c:2]:[nX3:3]-[H:4]",
    "[nX2:0](:[c:1]):[nX3:2]-[c:3]",
    "[c:0]=[NX2:1]-[H:2]",
    "[c:0]:[nX2:1]:[nX2:2]:[nX3:3](-[H:4]):[nX2:5]",
    "[OX1:0]=[CX3:1]-[C:2]-[NH2:3]",
    "[C:0]=[N:1]-[N:2]=[C:3](-[NH2:4])-[S,O,P:5]",
    "[nH1:0]:[c:1]:[nX2H0:2]:[nX2H0:3]:[cX3:4]:[cX3:5]",
    "[cX3:0]:[nX2H0:1]:[nX2H0:2]:[cX3:3]:[sX2H0:4]",
    "[cX3:0]:[cX3:1]:[nX2H0:2]:[nX2H0:3]:[cX3:4]:[cX3:5]:[cX3:6]:[nX3:7]:[cX3:8]",
    "[NX3H0:0]-[CX3:1]=[NX2H0:2]-[NX2H0:3]=[CX3:4]",
    "[CX3:0]=[NX2H0:1]-[NX3H1:2]-[CX4:3]",
    "[CX3:0](=[OX1:1])-[CX4:2]-[NX3:3](-[H:4])-[cX3:5]",
    "[CX3:0](=[OX1:1])-[CX4:2]-[NX3H1:3](-[H:4])-[CX3:5]=[NX2H0:6]",
    "[C:0]-[NH:1]-[NH:2]-[C:3]=[O:4]",
    "[C:0]=[NX2:1]-[OX2:2]",
    "[PX4:0](=[OX1:1])(-[NH2:2])(-[NH1:3])",
    "[c:0]:[nX2H0:1]:[nX2H0:2]:[cX3:3]:[nX3:4]-[NX3:5]",
    "[c:0]:[nX2:1]:[nX3:2]:[cX3:3]:[cX3:4]",
    "[C:0]=[NX2:1]-[C:2]",
    "[PX4:0](-[NH1:1])=[OX1:2]",
    "[CX4:0]-[CX4:1]-[NH2:2]",
    "[c:0]=[NX2:1]",
    "[PX4:0]-[NX3H0:1]",
    "[C:0]-[NX3:1]-[C:2](=[SX1:3])-[NX3:4]-[C:5]",
    "[OX2:0]-[C:1](=[OX1:2])-[NX3:3]-[NX3:4]",
    "[c:0]-[NX2:1]=[C:2]",
    "[c,S:0]-[C:1]-[NH2:2]",
    "[NX3:0]-[OX2:1]-[H:2]",
    "[c:0]:[n:1]:[n:2]:[c:3]:[nX3:4]-[c:5]",
    "[C:0]-[C:1]-[NH2:2]",
    "[S:0]-[NH1:1]-[C:2]",
    "[c:0]-[NX3:1](-[H:2])-[c:3]",
    "[C:0]=[NX2:1]-[NX2:2]=[C:3]-[NH2:4]",
    "[C:0]-[C:1]-[C:2]=[NX2H0:3]-[NX3H0:4]",
    "[c:0]-[NX3H1:1]-[C:2]-[C:3]=[C:4]-[c:5]",
    "[NX3:0]-[C:1](=[S:2])-[NX3:3]",
    "[c:0]:[nH0:1]:[nH0:2]:[c:3]:[c:4]:[c:5]",
    "[c:0]:[c:1]-[nX3H1:2]-[C:3]-[C:4]=[C:5]",
    "[C:0]=[C:1]-[NX3H0:2](-[C:3]-[C:4])(-[C:5]-[C:6])",
    "[nX3:0]:[c:1]:[nX2:2]:[nX2:3]:[c:4]",
    "[n:0]-[NX3H2:1]",
    "[nX3H1:0]:[c:1]:[c:2]:[c:3](=[O:4]):[c:5]:[c:6]",
    "[C:0]-[NX3H1:1]-[NX3H2:2]",
    "[OX2:0]-[C:1]-[NX3H2:2]",
    "[c:0]:[nX2H0:1]:[nX2H0:2]:[nX3H0:3]:[c:4]",
    "[SX4:0](=[O:1])(=[O:2])-[NX3H2:3]",
    "[NX3H0:0](-[C;!CSX1:1])(-[C;!CSX1:2])-[C;!CSX1:3]",
    "[c:0]:[c:1]:[c:2]:[c:3](-[OH:4]):[nX3H1+0:5]",
    "[C:0]-[C:1]-[NX3H0:2]-[OX2:3]-[C:4]",
    "[c:0]:[c:1]-[NX3H1:2]-[C:3]-[C:4]-[C:5]-[c:6]",
    "[C:0](=[NX2H1:1])(-[C:2])-[C:3]",
    "[C,c:0]-[NX2H0:1]=[NX2H0:2]-[NX3:3]",
    "[c:0]:[c:1]:[c:2]:[c:3]:[nX3:4]-[cX3:5]",
    "[nX2H0:0]:[nX2H0:1]:[nX2H0:2]:[nX3H0:3]:[c:4]:[c:5]",
    "[C:0]=[NX2:1]-[NH1:2]-[c:3]",
    "[C:0]-[C:1](-[C,O:2])=[NH1:3]",
    "[C:0]-[NX3H0:1](-[C:2])-[NX3H1:3]-[C:4]",
    "[nX2:0]:[nX2:1]:[cX3:2](-[C:3]):[nX2:4]:[nX3:5]-[C:6]",
    "[c:0]-[C:1]=[NX2H0:2]-[NX2H0:3]=[C:4]-[SH:5]",
    "[c:0]-[c:1]:[nX2H0:2]:[nX2H0:3]:[nX3:4](-[C:5]):[nX2:6]",
    "[c:0](=[SX1:1]):[nX3H1:2]:[c:3]",
    "[C:0]=[NX2H0:1]-[NX3H0:2](-[C:3])-[C:4]",
    "[c:0]:[nX2H0:1]:[sX2H0:2]:[c:3]:[c:4]",
    "[C:0]=[NX2H0:1]-[NH2:2]",
    "[nX2H0:0]:[nX2H0:1]:[c:2]:[nH1:3]:[c:4]:[c:5]:[c:6]",
    "[NX2H0;r7:0]-[NX2H0;r7:1]=[C;r7:2]-[NH1;r7:3]-[c;r7:4]:[c;r7:5]-[C;r7:6]",
    "[NX3:0](-[C:1])(-[C:2])-[C:3]=[S:4]",
    "[c:0]:[nX2H0:1]:[nX2H0:2]:[nX2H0:3]:[nX3H0:4]",
    "[c;r5:0]:[c;r5:1]:[c;r5:2]:[c;r5:3]:[nH1;r5:4]",
    "[O-:0]-[!N:1]",
    "[O-:0]-[N;+0:1]",
    "[S-,N-,C-,n-,c-:0]",
)

#: Conformers embedded for the ``polar`` flag, their seed, and the centring tolerance (A).
POLAR_CONFORMERS = 10
POLAR_SEED = 42
POLAR_TOLERANCE = 0.1


@lru_cache(maxsize=1)
def _patterns() -> dict[str, object]:
    """Compiled SMARTS (once per process)."""
    from rdkit import Chem

    def compile_all(smarts: Sequence[str]) -> list[Chem.Mol]:
        mols = [Chem.MolFromSmarts(s) for s in smarts]
        assert all(m is not None for m in mols), "a built-in SMARTS does not parse"
        return mols

    return {
        "acid": compile_all(_ACID_SMARTS),
        "base": compile_all(_BASE_SMARTS),
        "rot": compile_all([_ROTATABLE])[0],
        "hba": compile_all([_HBA])[0],
        "groups": dict(zip(_GROUP_SMARTS, compile_all(list(_GROUP_SMARTS.values())),
                           strict=True)),
    }


def _parse(smiles: str) -> object:
    """RDKit molecule with explicit hydrogens (stereochemistry kept: it matters for polar)."""
    from rdkit import Chem, RDLogger

    from bodisc.errors import InvalidMoleculeError

    RDLogger.DisableLog("rdApp.*")
    if not isinstance(smiles, str) or not smiles.strip():
        raise InvalidMoleculeError(f"empty SMILES {smiles!r}")
    mol = Chem.MolFromSmiles(smiles.strip())
    if mol is None or mol.GetNumAtoms() == 0:
        raise InvalidMoleculeError(f"RDKit cannot parse the SMILES {smiles!r}")
    return Chem.AddHs(mol)


def _is_polar(mol: object) -> int:
    """1 unless some low-energy conformer centres every graph-symmetry class on one point."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    ranks = np.asarray(list(Chem.CanonicalRankAtoms(mol, breakTies=False)))
    _, counts = np.unique(ranks, return_counts=True)
    if (counts == 1).sum() >= 2:  # two fixed atoms cannot both sit on the one centre
        return 1
    if mol.GetNumAtoms() == 1:
        return 0
    mol = Chem.Mol(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = POLAR_SEED
    conf_ids = list(AllChem.EmbedMultipleConfs(mol, POLAR_CONFORMERS, params))
    if not conf_ids:
        return 1
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=2000)
    else:
        AllChem.UFFOptimizeMoleculeConfs(mol, maxIters=2000)
    classes = [ranks == r for r in np.unique(ranks)]
    for cid in conf_ids:
        xyz = mol.GetConformer(cid).GetPositions()
        centres = np.array([xyz[c].mean(axis=0) for c in classes])
        if np.max(np.linalg.norm(centres - centres.mean(axis=0), axis=1)) < POLAR_TOLERANCE:
            return 0
    return 1


def categories(smiles: str) -> dict[str, int]:
    """The 44 ILR structure categories of one molecule.

    Args:
        smiles: A SMILES string (stereochemistry is used for ``polar`` when given).

    Returns:
        ``{name: 0 or 1}`` for every name of :data:`CATEGORY_NAMES`, in that order.

    Raises:
        bodisc.errors.InvalidMoleculeError: RDKit cannot parse ``smiles``.
    """
    from rdkit import Chem
    from rdkit.Chem import rdMolDescriptors

    mol = _parse(smiles)
    pats = _patterns()
    symbols = {atom.GetSymbol() for atom in mol.GetAtoms()}
    numbers = {atom.GetAtomicNum() for atom in mol.GetAtoms()}
    charges = [atom.GetFormalCharge() for atom in mol.GetAtoms()]
    bonds = {bond.GetBondType() for bond in mol.GetBonds()}
    bt = Chem.BondType
    out: dict[str, int] = {
        "polar": _is_polar(mol),
        "acid": any(mol.HasSubstructMatch(p) for p in pats["acid"]),
        "base": any(mol.HasSubstructMatch(p) for p in pats["base"]),
    }
    out.update({f"with_{e}": e in symbols for e in _ELEMENTS})
    out.update({
        "argon": bool(symbols & _NOBLE),
        "halogen": bool(symbols & _HALOGEN),
        "metal": bool(numbers - _NONMETAL_Z),
        "other": bool(symbols & _OTHER),
        "cation": sum(charges) > 0,
        "anion": sum(charges) < 0,
        "ion": any(charges),
        "SINGLE": bt.SINGLE in bonds,
        "DOUBLE": bt.DOUBLE in bonds,
        "TRIPLE": bt.TRIPLE in bonds,
        "AROMATIC": bt.AROMATIC in bonds,
        "pi": bool(bonds - {bt.SINGLE}),
        "conjugated": any(bond.GetIsConjugated() for bond in mol.GetBonds()),
        "ring": mol.GetRingInfo().NumRings() > 0,
        "branch": "(" in Chem.MolToSmiles(mol),
        "rot": mol.HasSubstructMatch(pats["rot"]),
        "spiro": rdMolDescriptors.CalcNumSpiroAtoms(mol) > 0,
        "hba": mol.HasSubstructMatch(pats["hba"]),
        "hbd": rdMolDescriptors.CalcNumHBD(mol) > 0,
    })  # fmt: skip
    out.update({k: mol.HasSubstructMatch(p) for k, p in pats["groups"].items()})
    return {name: int(out[name]) for name in CATEGORY_NAMES}


def category_matrix(smiles_list: Sequence[str]) -> np.ndarray:
    """Categories of many molecules.

    Args:
        smiles_list: ``n`` SMILES strings.

    Returns:
        0/1 integer matrix of shape ``(n, 44)``, columns in :data:`CATEGORY_NAMES` order.

    Raises:
        bodisc.errors.InvalidMoleculeError: Naming the first SMILES RDKit cannot parse.
    """
    rows = [list(categories(s).values()) for s in smiles_list]
    return np.asarray(rows, dtype=np.int64).reshape(len(rows), len(CATEGORY_NAMES))
