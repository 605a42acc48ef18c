"""bodisc: a Bayesian-optimisation discovery loop for molecules.

The public API::

    from bodisc import Campaign, load_campaign

    config = load_campaign("campaigns/dipole.toml", overrides={"acquisition.name": "ucb"})
    with Campaign(config) as campaign:
        batch = campaign.ask(10)            # proposals, recorded as pending jobs
        campaign.tell({p.smiles: 1.0 for p in batch})   # labels computed elsewhere
        campaign.run()                      # or: ask -> oracle -> tell to the budget

Importing the package is cheap: torch, botorch, mlflow, tblite and pyscf are imported only
where they are used. OpenMP threads that wait for work sleep instead of spinning
(``OMP_WAIT_POLICY=PASSIVE``, unless the environment says otherwise; it must be set
before torch loads): spinning threads slow scoring on a machine whose cores are busy.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

#: Public name -> the module that defines it. They load on first use (PEP 562), so that
#: ``import bodisc`` stays cheap and loads no numeric library: a worker process imports
#: this package before its initialiser sets one thread per library, and a BLAS or OpenMP
#: runtime loaded earlier would keep its own thread count (and reorder float sums).
_EXPORTS: dict[str, str] = {
    "Campaign": "bodisc.campaign",
    "Summary": "bodisc.campaign",
    "CampaignConfig": "bodisc.config",
    "load_campaign": "bodisc.config",
    "Outcome": "bodisc.loop.outcomes",
    "Proposal": "bodisc.loop.outcomes",
    "Oracle": "bodisc.oracle",
    "OracleResult": "bodisc.oracle",
    "BodiscError": "bodisc.errors",
    "ConfigError": "bodisc.errors",
    "InvalidMoleculeError": "bodisc.errors",
    "MoleculeFailure": "bodisc.errors",
    "OptionalDependencyError": "bodisc.errors",
    "RegistryError": "bodisc.errors",
    "StoreError": "bodisc.errors",
    "TellError": "bodisc.errors",
    "InputError": "bodisc.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bodisc' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
