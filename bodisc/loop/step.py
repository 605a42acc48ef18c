"""The loop's pure step: labels, pending molecules and candidates in; a batch out.

No store, no executor, no I/O: arrays in, indices out. A campaign assembles the arrays
from its store and records the batch; the QM9 replay benchmarks call the same function on
a fixed pool, so the figures they report are those of the product's fit and selection.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bodisc.loop.refit import FitState, SurrogateSettings, fit_surrogate

#: Fewer labels than this and a model-based strategy picks at random instead.
MIN_LABELS = 3


@dataclass(frozen=True)
class Batch:
    """The molecules a step chose, in the order chosen.

    Attributes:
        index: Indices into the candidates, shape ``(q,)``.
        score: Acquisition value of each pick when it was chosen, shape ``(q,)``.
        mean: Posterior means of the picks (maximisation form), shape ``(q,)``, or
            ``None`` without a model.
        std: Posterior standard deviations, shape ``(q,)``, or ``None``.
        strategy: The strategy that chose them (``random`` when there were too few
            labels for the one asked for).
        fit: The refit schedule's state after this step's fit (``None`` without one).
        fits: :func:`choose_multi_batch`'s states, one per model (objectives, then
            constrained properties), to pass as its ``previous`` next step.
        timings: ``fit_s``, ``score_s`` and ``fit_evaluations`` where a model was fitted.
        info: What the strategy learnt for people (``intervention``: its plan and graph),
            or ``None``.
    """

    index: np.ndarray
    score: np.ndarray
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    strategy: str = ""
    fit: FitState | None = None
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] | None = None
    fits: tuple[FitState | None, ...] = ()


def min_labels(strategy: str) -> int:
    """Labels a strategy needs before it chooses; with fewer the step picks at random."""
    from bodisc.acquisition import ACQUISITIONS

    spec = ACQUISITIONS[strategy]
    if spec.needs_labels:
        from bodisc.causal.intervention import MIN_LABELS as LEARN_MIN

        return LEARN_MIN
    return MIN_LABELS if spec.needs_model else 0


def _impute(X_train: np.ndarray, X_cand: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NaN descriptors (a graph descriptor xTB could not give) -> the training median.

    Returns:
        ``(X_train, X_cand, keep)``: both matrices without the columns that have no
        finite training value, NaNs filled; ``keep`` is the boolean column mask ``(d,)``.
    """
    X_train = np.asarray(X_train, dtype=float)
    finite = np.isfinite(X_train)
    keep = finite.any(axis=0)
    med = np.array([np.median(c[f]) for c, f in zip(X_train.T[keep], finite.T[keep],
                                                     strict=True)])
    out = [np.where(np.isfinite(X[:, keep]), X[:, keep], med[None, :])
           for X in (X_train, np.asarray(X_cand, dtype=float))]
    return out[0], out[1], keep


def choose_batch(X_train: np.ndarray, y_train: np.ndarray, X_cand: np.ndarray, q: int,
                 rng: np.random.Generator, *, strategy: str, surrogate: SurrogateSettings,
                 beta: float, previous: FitState | None = None,
                 X_pending: np.ndarray | None = None, ranking: np.ndarray | None = None,
                 restart_seed: Sequence[int] = (0,), names: Sequence[str] = (),
                 options: dict[str, Any] | None = None) -> Batch:
    """Choose ``q`` of the candidates with a registered strategy.

    Args:
        X_train: Descriptors of the labelled molecules, shape ``(n, d)`` (with the
            category flags appended for surrogate kinds that use them).
        y_train: Their labels in maximisation form, shape ``(n,)``.
        X_cand: Descriptors of the candidates, shape ``(m, d)`` (``(m, 0)`` is enough
            for ``random``).
        q: Batch size (at most ``m``).
        rng: The step's seeded generator.
        strategy: A name of :data:`bodisc.acquisition.ACQUISITIONS`.
        surrogate: The surrogate and its refit schedule.
        beta: UCB's exploration weight.
        previous: The refit schedule's state from the previous step.
        X_pending: Descriptors of molecules chosen earlier whose labels are not back,
            shape ``(p, d)``: the batch is conditioned on them (kriging believer).
        ranking: For ``rank``: each candidate's ranking value, maximisation form ``(m,)``.
        restart_seed: Entropy of the GP restarts' generator.
        names: The descriptors' names (strategies that draw graphs of them).
        options: Strategy settings (``intervention``: ``k``, ``step``,
            ``max_descriptors``).

    Returns:
        The :class:`Batch`.
    """
    from bodisc.acquisition import ACQUISITIONS, AcquisitionContext, select

    spec = ACQUISITIONS[strategy]
    q = min(q, X_cand.shape[0])
    if spec.needs_labels:
        if len(y_train) < min_labels(strategy):  # too few to learn from: random, as below
            return choose_batch(X_train, y_train, X_cand, q, rng, strategy="random",
                                surrogate=surrogate, beta=beta)
        t0 = time.perf_counter()
        X_t, X_c, keep = _impute(X_train, X_cand)
        labels = tuple(names) or tuple(f"x{i}" for i in range(len(keep)))
        kept = tuple(n for n, k in zip(labels, keep, strict=True) if k)
        ctx = AcquisitionContext(X_c, q, float(np.max(y_train)), rng, X_train=X_t,
                                 y_train=np.asarray(y_train, dtype=float), names=kept,
                                 options=dict(options or {}))
        sel = select(strategy, ctx)
        return Batch(sel.index, sel.score, strategy=strategy,
                     timings={"score_s": time.perf_counter() - t0}, info=sel.info)
    if not spec.needs_model or len(y_train) < MIN_LABELS:
        if spec.needs_model:
            strategy = "random"
        ctx = AcquisitionContext(X_cand, q, 0.0, rng, ranking=ranking)
        sel = select(strategy, ctx)
        return Batch(sel.index, sel.score, strategy=strategy)
    from bodisc.surrogates.gp import SMALL_N, torch_threads

    with torch_threads(1 if len(y_train) < SMALL_N else None):
        t0 = time.perf_counter()
        model, fit = fit_surrogate(surrogate, X_train, y_train, previous, restart_seed)
        t1 = time.perf_counter()
        pending = X_pending if X_pending is not None and len(X_pending) else None
        ctx = AcquisitionContext(X_cand, q, float(np.max(y_train)), rng, model, beta,
                                 pending=pending)
        sel = select(strategy, ctx)
        mean, std = model.predict(X_cand[sel.index])
        t2 = time.perf_counter()
    timings = {"fit_s": t1 - t0, "score_s": t2 - t1,
               "fit_evaluations": float(getattr(model, "fit_evaluations", 0))}
    return Batch(sel.index, sel.score, np.asarray(mean, dtype=float),
                 np.asarray(std, dtype=float), strategy, fit, timings)


def choose_fidelity_batch(X_train: np.ndarray, fidelities: Sequence[str], y_train: np.ndarray,
                          X_cand: np.ndarray, has_cheap: np.ndarray, q: int,
                          rng: np.random.Generator, *, strategy: str,
                          surrogate: SurrogateSettings, beta: float, fidelity_beta: float,
                          gamma: float, previous: FitState | None = None,
                          restart_seed: Sequence[int] = (0,)
                          ) -> tuple[list[Any], FitState | None, dict[str, float]]:
    """A multi-fidelity batch: picks on the target posterior, then an oracle for each.

    The GP takes the fidelity as one more input; each pick goes to the cheap oracle by
    the MF-GP-UCB rule (:func:`bodisc.acquisition.multifidelity.select_with_fidelity`).

    Args:
        X_train: Descriptors of the labelled molecules ``(n, d)``, target and cheap.
        fidelities: The fidelity of each label (``target`` or ``cheap``), ``(n,)``.
        y_train: Labels in maximisation form ``(n,)``; at least one target label.
        X_cand: Candidate descriptors ``(m, d)``.
        has_cheap: Whether each candidate has a cheap job already ``(m,)``.
        q: Batch size.
        rng: The step's seeded generator.
        strategy: The campaign's model-based acquisition.
        surrogate: The surrogate and its refit schedule.
        beta: UCB's exploration weight.
        fidelity_beta: The rule's confidence width.
        gamma: The rule's threshold on the cheap standard deviation.
        previous: The refit schedule's state from the previous step.
        restart_seed: Entropy of the GP restarts' generator.

    Returns:
        The picks (:class:`~bodisc.acquisition.multifidelity.Pick`, means in maximisation
        form), the refit state and ``fit_s``, ``score_s``, ``fit_evaluations``.
    """
    from bodisc.acquisition.multifidelity import CHEAP, select_with_fidelity, with_fidelity
    from bodisc.surrogates.gp import SMALL_N, torch_threads

    X_t = with_fidelity(X_train, list(fidelities))
    best = float(max(y for y, f in zip(y_train, fidelities, strict=True) if f != CHEAP))
    with torch_threads(1 if len(y_train) < SMALL_N else None):
        t0 = time.perf_counter()
        model, fit = fit_surrogate(surrogate, X_t, y_train, previous, restart_seed)
        t1 = time.perf_counter()
        picks = select_with_fidelity(strategy, model, X_cand, has_cheap, q, best, rng, beta,
                                     fidelity_beta, gamma)
        t2 = time.perf_counter()
    return picks, fit, {"fit_s": t1 - t0, "score_s": t2 - t1,
                        "fit_evaluations": float(getattr(model, "fit_evaluations", 0))}


def choose_multi_batch(X_train: np.ndarray, Y_train: np.ndarray, X_cand: np.ndarray, q: int,
                       rng: np.random.Generator, *, strategy: str,
                       surrogate: SurrogateSettings, beta: float,
                       C_train: np.ndarray | None = None,
                       lower: Sequence[float | None] = (),
                       upper: Sequence[float | None] = (),
                       ref_point: np.ndarray | Sequence[float] | None = None,
                       X_pending: np.ndarray | None = None,
                       likely: float | None = None,
                       options: dict[str, Any] | None = None,
                       restart_seed: Sequence[int] = (0,),
                       previous: Sequence[FitState | None] = ()) -> Batch:
    """Choose ``q`` candidates for several objectives and/or constrained properties.

    One surrogate is fitted per objective column and per constraint column, each through
    the refit schedule of a single-objective step (:func:`fit_surrogate` with that
    model's state from ``previous``: warm starts, ``refit_growth``, ``refit_every``); the
    states come back in ``Batch.fits``. A ``proxy`` prior mean (``surrogate.options``)
    describes the first objective's analogue, so only the first objective's GP gets it;
    the other GPs use a constant mean.

    It serves one objective with constraints (``logei``, ``ucb``, ``thompson``,
    ``greedy``: constrained forms in :mod:`bodisc.acquisition`) and two or more objectives
    (``qlognehvi``, ``parego``: :mod:`bodisc.acquisition.multiobjective`, which need
    surrogate kind ``gp``).

    Failed calls and infeasible labels:

    * A labelled row with a non-finite objective or constraint value is a failed call:
      it carries no label, so it is left out of every fit (one calculation gives all of a
      molecule's properties, so a failure loses them together) and of the counts below.
    * A row with every value finite but a constraint outside its bounds is infeasible: it
      trains every GP (what the objectives are there is still information), but it is
      never the incumbent: ``best`` is the best *feasible* label of objective 0 (``-inf``
      when none is, and then constrained LogEI looks for a feasible molecule first), the
      default reference point is taken from the feasible labels, and qLogNEHVI counts
      its hypervolume only in feasible posterior samples.
    * Fewer than :data:`MIN_LABELS` usable rows: the batch is chosen at random, as in
      :func:`choose_batch`.

    Args:
        X_train: Descriptors of the labelled molecules, shape ``(n, d)``.
        Y_train: Their objective labels in maximisation form, shape ``(n, k)`` (``(n,)``
            for ``k = 1``); NaN for a failed call.
        X_cand: Descriptors of the candidates, shape ``(m, d)``.
        q: Batch size (at most ``m``).
        rng: The step's seeded generator.
        strategy: A name of :data:`bodisc.acquisition.ACQUISITIONS`: ``qlognehvi`` or
            ``parego`` for ``k >= 2``; for ``k = 1`` also ``logei``, ``ucb``,
            ``thompson``, ``greedy`` (or ``random``).
        surrogate: The surrogate settings (kind, kernel, device, ...).
        beta: UCB's exploration weight (``ucb``, ``parego``).
        C_train: Constrained properties of the labelled molecules in their own units,
            shape ``(n, c)``, or ``None`` for no constraints.
        lower: Per constraint column the smallest feasible value or ``None``, length ``c``
            (empty: no lower bounds).
        upper: Per constraint column the largest feasible value or ``None``, length ``c``
            (empty: no upper bounds).
        ref_point: Hypervolume reference point, maximisation form, shape ``(k,)``;
            ``None``: :func:`bodisc.acquisition.multiobjective.default_ref_point`.
        X_pending: Descriptors of molecules chosen earlier whose labels are not back,
            shape ``(p, d)``: the batch is conditioned on them.
        likely: With constraints, the probability of feasibility from which ``ucb``,
            ``greedy`` and ``parego`` count a candidate as likely feasible (``[acquisition]
            feasibility``); ``None``: :data:`bodisc.acquisition.LIKELY`.
        options: Strategy settings (``qlognehvi``: ``pareto_depth``), as
            :meth:`bodisc.config.AcquisitionConfig.options` gives them.
        restart_seed: Entropy of the GP restarts' generator.
        previous: The refit states of the last step's ``Batch.fits`` (objectives, then
            constrained properties); empty for the first fit, or to fit from scratch.

    Returns:
        The :class:`Batch`; ``mean`` and ``std`` are objective 0's posterior at the picks;
        ``fits`` the refit states; ``info`` holds ``ref_point`` (``k >= 2``) and
        ``feasible_labels``.

    Raises:
        ValueError: For a strategy that does not fit the number of objectives, bounds
            that do not match ``C_train``, or a multi-objective strategy with a surrogate
            kind whose model is not a ``GPSurrogate``.
    """
    from bodisc.acquisition import ACQUISITIONS, LIKELY, AcquisitionContext, Constraint, select
    from bodisc.pareto import feasible_mask

    spec = ACQUISITIONS[strategy]
    X_train = np.asarray(X_train, dtype=float)
    n = X_train.shape[0]
    Y = np.asarray(Y_train, dtype=float).reshape(n, -1)
    k = Y.shape[1]
    C = (np.zeros((n, 0)) if C_train is None
         else np.asarray(C_train, dtype=float).reshape(n, -1))
    c = C.shape[1]
    lows = list(lower) if len(lower) else [None] * c
    ups = list(upper) if len(upper) else [None] * c
    if len(lows) != c or len(ups) != c:
        raise ValueError(f"{c} constraint columns but {len(lows)} lower and {len(ups)} "
                         "upper bounds")
    if any(lo is None and up is None for lo, up in zip(lows, ups, strict=True)):
        raise ValueError("every constraint column needs a lower or an upper bound")
    several = spec.objectives == "several"
    if spec.needs_labels or (not spec.needs_model and strategy != "random"):
        raise ValueError(f"acquisition {strategy!r} cannot choose for objectives and "
                         "constraints; use qlognehvi, parego, logei, ucb, thompson or greedy")
    if k >= 2 and not several:
        multi = sorted(name for name, s in ACQUISITIONS.items() if s.objectives == "several")
        raise ValueError(f"acquisition {strategy!r} takes one objective, got {k}; "
                         f"choose one of: {', '.join(multi)}")
    if several:
        _require_gp(surrogate, strategy)
    q = min(q, X_cand.shape[0])
    usable = np.isfinite(Y).all(axis=1) & np.isfinite(C).all(axis=1)  # failed calls out
    X_t, Y_t, C_t = X_train[usable], Y[usable], C[usable]
    feasible = feasible_mask(C_t, lows, ups)
    if not spec.needs_model or len(Y_t) < MIN_LABELS:
        sel = select("random", AcquisitionContext(X_cand, q, 0.0, rng))
        return Batch(sel.index, sel.score, strategy="random")
    from bodisc.surrogates.gp import SMALL_N, torch_threads

    plain = _without_proxy(surrogate)
    if len(previous) not in (0, k + c):
        raise ValueError(f"{len(previous)} previous refit states for {k + c} models")
    last = list(previous) or [None] * (k + c)
    with torch_threads(1 if len(Y_t) < SMALL_N else None):
        t0 = time.perf_counter()
        columns = [(surrogate if j == 0 else plain, Y_t[:, j]) for j in range(k)]
        columns += [(plain, C_t[:, j]) for j in range(c)]
        fitted = [fit_surrogate(settings, X_t, column, state, restart_seed)
                  for (settings, column), state in zip(columns, last, strict=True)]
        fits = [model for model, _ in fitted]
        t1 = time.perf_counter()
        models, constraint_models = fits[:k], fits[k:]
        constraints = tuple(Constraint(mdl, lo, up) for mdl, lo, up
                            in zip(constraint_models, lows, ups, strict=True))
        best = float(np.max(Y_t[feasible, 0])) if feasible.any() else -np.inf
        cut = LIKELY if likely is None else float(likely)
        pending = X_pending if X_pending is not None and len(X_pending) else None
        info: dict[str, Any] = {"feasible_labels": int(feasible.sum())}
        if several:
            ref = None
            if k >= 2:
                from bodisc.acquisition.multiobjective import default_ref_point

                ref = (np.asarray(ref_point, dtype=float).reshape(k) if ref_point is not None
                       else default_ref_point(Y_t, feasible))
                info["ref_point"] = ref.tolist()
            ctx = AcquisitionContext(X_cand, q, best, rng, models[0], beta, pending=pending,
                                     X_train=X_t, y_train=Y_t[:, 0], models=tuple(models),
                                     Y_train=Y_t, ref_point=ref, constraints=constraints,
                                     feasible_train=feasible, likely=cut,
                                     options=dict(options or {}))
        else:
            ctx = AcquisitionContext(X_cand, q, best, rng, models[0], beta, pending=pending,
                                     constraints=constraints, feasible_train=feasible,
                                     likely=cut)
        sel = select(strategy, ctx)
        mean, std = models[0].predict(X_cand[sel.index])
        t2 = time.perf_counter()
    timings = {"fit_s": t1 - t0, "score_s": t2 - t1,
               "fit_evaluations": float(sum(getattr(f, "fit_evaluations", 0) for f in fits))}
    return Batch(sel.index, sel.score, np.asarray(mean, dtype=float),
                 np.asarray(std, dtype=float), strategy, None, timings, info,
                 tuple(state for _, state in fitted))


def _require_gp(surrogate: SurrogateSettings, strategy: str) -> None:
    """Refuse a surrogate kind whose model is not a ``GPSurrogate`` (before any fit).

    Raises:
        ValueError: Naming the kind and the strategy.
    """
    from bodisc.surrogates import build_surrogate
    from bodisc.surrogates.gp import GPSurrogate

    s = surrogate
    model = build_surrogate(s.kind, s.kernel, s.device, s.precision, **dict(s.options))
    if not isinstance(model, GPSurrogate):
        raise ValueError(f"acquisition {strategy!r} needs one exact GP per objective "
                         f"(surrogate kind 'gp'); surrogate kind {s.kind!r} is not one")


def _without_proxy(surrogate: SurrogateSettings) -> SurrogateSettings:
    """The settings with a ``proxy`` prior mean replaced by the constant one.

    The proxy describes the first objective's cheap analogue; the other objectives and
    the constrained properties have none.
    """
    import dataclasses

    options = dict(surrogate.options)
    if options.get("mean") != "proxy":
        return surrogate
    for key in ("mean", "proxy_column", "proxy_sign"):
        options.pop(key, None)
    return dataclasses.replace(surrogate, options=options)
