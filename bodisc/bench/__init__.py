"""Benchmarks behind ``bodisc bench ...``; each module imports its heavy dependencies lazily.

They stay inside the package so that ``bodisc bench`` works from an installed copy, on
another machine or a GPU node, with nothing but the wheel; their results (JSON, tables,
figures) live in the repository under ``docs/results/`` and do not ship. Every bodisc
method a benchmark measures runs the product's own loop: :func:`bodisc.loop.step.choose_batch`
(the QM9 replays) or :class:`bodisc.campaign.Campaign` (open-ended search, comparisons);
the baselines (random, cheap ranking, random forest, Tanimoto GP) are the benchmarks' own.
"""
