"""The oracles shipped with bodisc, registered through the ``bodisc.oracles`` entry points.

This folder is installed as the subpackage ``bodisc.builtin_oracles`` (see the
``package-dir`` mapping in ``pyproject.toml``): import its modules by that name, e.g.
``from bodisc.builtin_oracles.xtb import XtbDipoleOracle``.
"""
