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

from bodisc.campaign import Campaign, Summary  # noqa: E402
from bodisc.config import CampaignConfig, load_campaign  # noqa: E402
from bodisc.errors import (  # noqa: E402
    BodiscError,
    ConfigError,
    InvalidMoleculeError,
    MoleculeFailure,
    OptionalDependencyError,
    RegistryError,
    StoreError,
    TellError,
)
from bodisc.loop.outcomes import Outcome, Proposal  # noqa: E402
from bodisc.oracle import Oracle, OracleResult  # noqa: E402

__all__ = [
    "BodiscError",
    "Campaign",
    "CampaignConfig",
    "ConfigError",
    "InvalidMoleculeError",
    "MoleculeFailure",
    "OptionalDependencyError",
    "Oracle",
    "OracleResult",
    "Outcome",
    "Proposal",
    "RegistryError",
    "StoreError",
    "Summary",
    "TellError",
    "__version__",
    "load_campaign",
]
