"""bodisc: a Bayesian-optimisation discovery loop for molecules.

Importing the package is cheap: torch, botorch, mlflow, tblite and pyscf are imported only
where they are used.
"""

__version__ = "0.1.0"
