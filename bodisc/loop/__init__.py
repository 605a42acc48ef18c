"""The discovery loop's parts: the pure step, the refit schedule, featurisation, diagnostics.

:class:`bodisc.campaign.Campaign` drives them with a store, an executor and a tracker;
the QM9 replay benchmarks drive :func:`~bodisc.loop.step.choose_batch` directly, so both
run the same fit and selection.
"""
