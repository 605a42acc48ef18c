"""The oracles shipped with bodisc, registered through the ``bodisc.oracles`` entry points."""
