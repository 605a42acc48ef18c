"""The ``bodisc`` command.

``bodisc campaign FILE`` runs or resumes a campaign; ``bodisc validate FILE`` only checks a
campaign file. Errors a user can cause are printed as one line on stderr with a non-zero
exit status (2 for bad input); nothing already computed is lost.
"""

from __future__ import annotations

import sys
import time
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from bodisc.errors import BodiscError
from bodisc.surrogates.registry import SURROGATES

app = typer.Typer(
    name="bodisc",
    help="Bayesian-optimisation discovery of molecules: campaigns, comparisons, reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: expected KEY=VALUE, e.g. acquisition.name=ucb",
                                     param_hint="--set")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[key.strip()] = value
    return out


ConfigArg = Annotated[Path, typer.Argument(help="Campaign file (TOML).", show_default=False)]
#: The surrogate kinds the help names (the registry's, without importing torch).
SURROGATE_CHOICES: tuple[str, ...] = tuple(SURROGATES)
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a field, e.g. --set acquisition.name=ucb "
                               "(TOML value syntax). surrogate.kind: one of "
                               f"{', '.join(SURROGATE_CHOICES)}."),
]


@app.command()
def validate(config: ConfigArg, set_: SetOpt = None) -> None:
    """Check a campaign file without running anything."""
    from bodisc.config import load_campaign

    cfg = load_campaign(config, _parse_overrides(set_ or []))
    typer.echo(f"{config}: valid campaign {cfg.name!r} ({cfg.acquisition.name}, "
               f"{cfg.budget.oracle_calls} oracle calls of {cfg.oracle.name})")


@app.command()
def campaign(
    config: ConfigArg,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Discard this campaign's store and start anew (says what it discards)."
    )] = False,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", help="MLflow tracking URI instead of [paths] mlruns."
    )] = None,
) -> None:
    """Run a campaign, or continue it where it stopped."""
    from rich.console import Console

    from bodisc.campaign import Campaign, discard_store
    from bodisc.config import load_campaign

    cfg = load_campaign(config, _parse_overrides(set_ or []))
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    if fresh:
        discarded = discard_store(cfg)
        if discarded:
            console.print(f"--fresh: discarding the campaign store {discarded}")
    reporter = _quiet_reporter(console) if quiet else _rich_reporter(console)
    try:
        summary = Campaign(cfg, str(config), reporter, tracking_uri=tracking_uri).run()
    except KeyboardInterrupt:
        console.print("interrupted: every finished oracle call is in the store; run the same "
                      "command to continue")
        raise typer.Exit(130) from None
    _print_summary(console, cfg, summary, local=not tracking_uri)


@app.command()
def compare(
    config: Annotated[Path, typer.Argument(
        help="Campaign file with a \\[compare] table (strategies, seeds).",
        show_default=False)],
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", help="MLflow tracking URI instead of \\[paths] mlruns."
    )] = None,
    parallel: Annotated[int | None, typer.Option(
        "--parallel", min=1, help="Runs at once (default: \\[compare] parallel); each run "
                                  "uses \\[execution] workers processes."
    )] = None,
    no_report: Annotated[bool, typer.Option(
        "--no-report", help="Do not write the report at the end.")] = False,
) -> None:
    """Run every strategy x seed of a comparison (resumable; finished runs are skipped)."""
    from rich.console import Console

    from bodisc.compare import Comparison, format_table, summary_table
    from bodisc.config import load_campaign
    from bodisc.report import comparison_report

    cfg = load_campaign(config, _parse_overrides(set_ or []))
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    comparison = Comparison(cfg, str(config), tracking_uri, console.print)
    try:
        results = comparison.run(
            lambda label: _quiet_reporter(console) if quiet else _rich_reporter(console),
            parallel=parallel, report=None if no_report else comparison_report)
    except KeyboardInterrupt:
        console.print("interrupted: every finished oracle call is in the stores; run the "
                      "same command to continue")
        raise typer.Exit(130) from None
    from bodisc.tracking.mlflow_tracker import ui_command

    console.print(format_table(summary_table(results, cfg.objective.direction == "maximize"),
                               cfg.objective.unit))
    console.print(f"runs:       {comparison.root}")
    links = comparison.links()
    if links:
        console.print(f"MLflow run: {links[0]}")
        console.print(f"MLflow runs table: {links[1]}")
    if not tracking_uri:
        console.print(f"MLflow UI:  {ui_command(cfg.path('mlruns'))} (then open the links)")


@app.command()
def report(
    target: Annotated[str, typer.Argument(
        help="A campaign or comparison file (TOML), or an MLflow run id.",
        show_default=False)],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the PNGs and report.html (default: beside the store).")]
    = None,
    set_: SetOpt = None,
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", help="MLflow tracking URI (for a run id; default: ./mlruns).")]
    = None,
    no_mlflow: Annotated[bool, typer.Option(
        "--no-mlflow", help="Do not log the figures as MLflow artifacts.")] = False,
) -> None:
    """Figures and one self-contained HTML page for a campaign, comparison or MLflow run."""
    from bodisc.report import make_report

    paths = make_report(target, out, _parse_overrides(set_ or []), tracking_uri,
                        log_mlflow=not no_mlflow, message=typer.echo)
    for path in paths:
        typer.echo(f"wrote {path}")


#: The columns ``bodisc suggest`` writes after the proposal's own: the label to fill in
#: (named as the objective), then ``status``, ``reason``, ``source`` (see ``ingest``).
SUGGEST_COLUMNS = ("smiles", "inchikey", "pred_mean", "pred_std", "acq_value", "iteration")


@app.command()
def suggest(
    config: ConfigArg,
    n: Annotated[int | None, typer.Option(
        "--n", min=1, help="How many proposals (default: \\[acquisition] batch_size).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="CSV file to write (default: standard output).")] = None,
    set_: SetOpt = None,
) -> None:
    """Propose the next molecules and record them as pending (for labels from outside).

    The CSV has the proposals and empty columns to fill in (the objective's property,
    status, reason, source): give it back to 'bodisc ingest' as it is.
    """
    import csv
    import io

    from rich.console import Console

    from bodisc.campaign import Campaign
    from bodisc.config import load_campaign

    cfg = load_campaign(config, _parse_overrides(set_ or []))
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    with Campaign(cfg, str(config), _quiet_reporter(console)) as camp:
        proposals = camp.ask(n)
        pending = len(camp.proposals(pending_only=True))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*SUGGEST_COLUMNS, cfg.objective.property, "status", "reason", "source"])
    for p in proposals:
        writer.writerow([p.smiles, p.inchikey, _num(p.mean), _num(p.std), _num(p.acquisition),
                         p.iteration, "", "", "", ""])
    if out is None:
        sys.stdout.write(buffer.getvalue())
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(buffer.getvalue())
        tmp.replace(out)
    console.print(f"{len(proposals)} proposal(s){f' in {out}' if out else ''}; "
                  f"{pending} suggestion(s) pending")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


@app.command()
def ingest(
    config: ConfigArg,
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file of labels.",
                                         show_default=False)],
    set_: SetOpt = None,
) -> None:
    """Take labels, failures (status failed, reason) and withdrawals (status cancelled).

    All or nothing: a file with a bad row writes nothing and names every bad row. A file
    ingested twice changes nothing. A label for a molecule never proposed is kept as an
    off-policy label (it does not count against the budget).
    """
    from rich.console import Console

    from bodisc.campaign import Campaign
    from bodisc.config import load_campaign

    cfg = load_campaign(config, _parse_overrides(set_ or []))
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    with Campaign(cfg, str(config), _quiet_reporter(console)) as camp:
        plan = camp.ingest(file)
        pending = len(camp.proposals(pending_only=True))
        used = camp.store.calls_used() if camp.store is not None else 0
    console.print(f"{file}: {plan.summary()}; {pending} suggestion(s) pending, "
                  f"{used} of {cfg.budget.oracle_calls} calls used")


@app.command()
def cancel(
    config: ConfigArg,
    molecules: Annotated[list[str] | None, typer.Argument(
        help="SMILES or InChIKeys of pending suggestions (none: every pending one).",
        show_default=False)] = None,
    set_: SetOpt = None,
) -> None:
    """Withdraw pending suggestions: they no longer count as calls nor come back."""
    from rich.console import Console

    from bodisc.campaign import Campaign
    from bodisc.config import load_campaign

    cfg = load_campaign(config, _parse_overrides(set_ or []))
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    with Campaign(cfg, str(config), _quiet_reporter(console)) as camp:
        n = camp.cancel(molecules or None, reason="bodisc cancel")
    console.print(f"{n} suggestion(s) withdrawn")


@app.command()
def predict(
    config: ConfigArg,
    file: Annotated[Path, typer.Argument(
        help="Molecules: .smi, or .csv/.parquet with a smiles column.", show_default=False)],
    out: Annotated[Path | None, typer.Option(
        "--out", help="CSV file to write (default: standard output).")] = None,
    set_: SetOpt = None,
) -> None:
    """Predict molecules with the campaign's surrogate; nothing is recorded in the store.

    Columns: smiles, inchikey, mean, std, distance (to the nearest labelled molecule in
    z-scored descriptors), max_tanimoto, labelled (its label, if any), reason.
    """
    from rich.console import Console

    from bodisc.campaign import Campaign
    from bodisc.config import load_campaign
    from bodisc.data.tables import read_library

    cfg = load_campaign(config, _parse_overrides(set_ or []))
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    table = read_library(file, constraints=None)
    for bad in table.rejected:
        console.print(bad.message(str(file)))
    with Campaign(cfg, str(config), _quiet_reporter(console), tracking=False) as camp:
        frame = camp.predict([m.smiles for m in table.molecules])
    if out is None:
        sys.stdout.write(frame.to_csv(index=False, float_format="%.6g"))
    else:
        frame.to_csv(out, index=False, float_format="%.6g")
        console.print(f"{len(frame)} prediction(s) in {out}")


@app.command()
def export(
    config: ConfigArg,
    fmt: Annotated[str, typer.Option(
        "--format", help="csv, parquet or sdf.")] = "csv",
    out: Annotated[Path | None, typer.Option(
        "--out", help="File to write (default: beside the store, labels.<format>).")] = None,
    set_: SetOpt = None,
) -> None:
    """Write every result with its molecule, oracle, provenance, iteration and reason."""
    from bodisc.config import load_campaign
    from bodisc.errors import ConfigError
    from bodisc.loop.records import EXPORT_FORMATS, export_labels
    from bodisc.store import CampaignStore

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(str(config), "--format", fmt, f"one of {', '.join(EXPORT_FORMATS)}")
    cfg = load_campaign(config, _parse_overrides(set_ or []))
    store = CampaignStore(cfg.path("store"), create=False)
    try:
        path = export_labels(store, cfg, fmt, out or cfg.path("store").parent / f"labels.{fmt}")
    finally:
        store.close()
    typer.echo(f"{path}")


bench_app = typer.Typer(
    help="Benchmarks; each reports a ratio against its baseline, measured in the same run.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the results as JSON.")]


@bench_app.command("descriptors")
def bench_descriptors_cmd(
    n: Annotated[int, typer.Option(help="QM9 molecules to featurise.", min=1)] = 200,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 2,
    tier: Annotated[str, typer.Option(help="Descriptor tier: fast or full.")] = "fast",
    seed: Annotated[int, typer.Option(help="Seed of the QM9 sample.")] = 0,
    json_out: JsonOpt = None,
) -> None:
    """QMex descriptor throughput on QM9 molecules: N workers against one worker."""
    import json

    from bodisc.bench.descriptors import bench_descriptors, qm9_sample
    from bodisc.descriptors import TIERS

    if tier not in TIERS:
        raise typer.BadParameter(f"{tier!r}; choose one of: {', '.join(TIERS)}",
                                 param_hint="--tier")
    result = bench_descriptors(qm9_sample(n, seed), workers=workers, tier=tier)
    typer.echo(
        f"{tier} tier ({result['n_descriptors']} descriptors), {n} QM9 molecules: "
        f"{result['molecules_per_s']:.2f} molecules/s with {workers} workers, "
        f"{result['baseline_molecules_per_s']:.2f} with 1 (ratio {result['speedup']:.2f}); "
        f"median {result['median_molecule_s'] * 1000:.0f} ms per molecule; "
        f"{result['failures']} failed; load {result['runs']['parallel']['load_before']:.2f}"
    )
    if json_out:
        json_out.write_text(json.dumps(result, indent=2, default=str))
        typer.echo(f"wrote {json_out}")


def _parse_rows(text: str | None) -> list[int] | None:
    if not text:
        return None
    rows: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        try:
            rows.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
        except ValueError:
            raise typer.BadParameter(f"{text!r}: expected rows like 61-72 or 61,64",
                                     param_hint="--rows") from None
    return rows


@bench_app.command("surrogate")
def bench_surrogate_cmd(
    parts: Annotated[str | None, typer.Option(
        help="Comma-separated parts (default: every part; a wrong name lists them).")] = None,
    n: Annotated[int, typer.Option(help="Labels of the scoring and memory runs.", min=2)] = 1000,
    d: Annotated[int, typer.Option(help="Descriptors of the scoring run.", min=1)] = 22,
    candidates: Annotated[int, typer.Option(help="Candidates scored.", min=1)] = 20000,
    mem_candidates: Annotated[int, typer.Option(help="Candidates of the memory run.",
                                                min=1)] = 1_000_000,
    warm_n: Annotated[int, typer.Option(help="Labels before the warm refit.", min=3)] = 1000,
    batch_k: Annotated[int, typer.Option(help="GPs in the batched fit.", min=1)] = 8,
    batch_n: Annotated[int, typer.Option(help="Labels per batched GP.", min=3)] = 200,
    sparse_n: Annotated[int, typer.Option(help="Labels of the sparse GP fit.", min=3)] = 50000,
    exact_n: Annotated[int, typer.Option(help="Labels of the exact GP it is compared with.",
                                         min=3)] = 2000,
    sparse_draws: Annotated[int, typer.Option(
        help="Random splits the sparse GP's accuracy is compared on (mean RMSEs).",
        min=1)] = 1,
    baseline_max: Annotated[int | None, typer.Option(
        help="Candidates scored by the botorch baseline (default: all).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    refit_trace: Annotated[bool, typer.Option(
        "--refit-trace", help="Instead of the parts: trace the likelihood of cold fits, "
                              "warm refits and conditioning only on real QM9 rows "
                              "(docs/benchmarks/refit.md).")] = False,
    refit_seeds: Annotated[str, typer.Option(
        help="--refit-trace: comma-separated seeds of the splits.")] = "1,2,3",
    json_out: JsonOpt = None,
) -> None:
    """Surrogate speed and memory, each as a ratio against a baseline run alongside."""
    import json

    from bodisc.bench.surrogate import PARTS, bench_refit, bench_surrogate

    if refit_trace:
        seeds = tuple(int(s) for s in refit_seeds.split(",") if s.strip())

        def shown(part: str, out: dict[str, Any]) -> None:
            for split in [out] if "fits" in out else []:
                fits = split["fits"]
                typer.echo(f"{part}: " + ", ".join(
                    f"{k} {f['seconds']:.3g} s / {f['evaluations']} evaluations"
                    for k, f in fits.items()))
            for row in out.get("rows", []):
                typer.echo(f"{part}: {row['n0']} -> {row['n1']} labels: RMSE condition "
                           f"{row['rmse_condition']:.4g}, warm {row['rmse_warm']:.4g}")

        trace = bench_refit(seeds, n=warm_n, device=device, progress=shown)
        if json_out:
            json_out.write_text(json.dumps(trace, indent=1, default=str) + "\n")
            typer.echo(f"wrote {json_out}")
        return

    chosen = tuple(p.strip() for p in (parts or ",".join(PARTS)).split(",") if p.strip())
    bad = [p for p in chosen if p not in PARTS]
    if bad:
        raise BodiscError(f"--parts: unknown part {bad[0]!r}; allowed: {', '.join(PARTS)}")

    def show(part: str, out: dict[str, Any]) -> None:
        flat = {k: v for k, v in out.items() if isinstance(v, int | float)}
        typer.echo(f"{part}: " + ", ".join(f"{k} {v:.4g}" for k, v in flat.items()))
        for key, value in out.items():  # where the rows came from (real or synthetic)
            if key.endswith("_data"):
                typer.echo(f"{part}: {key}: {value}")

    result = bench_surrogate(chosen, n=n, d=d, candidates=candidates,
                             mem_candidates=mem_candidates, warm_n=warm_n, batch_k=batch_k,
                             batch_n=batch_n, sparse_n=sparse_n, exact_n=exact_n,
                             sparse_draws=sparse_draws,
                             device=device, baseline_max=baseline_max, progress=show)
    typer.echo(f"device: {result['device']}")
    if json_out:
        json_out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        typer.echo(f"wrote {json_out}")


@bench_app.command("replay")
def bench_replay_cmd(
    calls: Annotated[int, typer.Option(help="Oracle calls per run.", min=2)] = 2000,
    batch: Annotated[int, typer.Option(help="Molecules per iteration.", min=1)] = 50,
    start: Annotated[int, typer.Option(help="Random molecules labelled first.", min=1)] = 100,
    pool: Annotated[int, typer.Option(
        help="Pool size; past the cached QM9 molecules, rows are drawn again and jittered "
             "(for timing only).", min=0)] = 0,
    target: Annotated[str, typer.Option(help="QM9 label (maximised).")] = "dipole_D",
    acquisition: Annotated[str, typer.Option(help="Acquisition strategy.")] = "logei",
    seed: Annotated[int, typer.Option(help="Seed of the start set and strategy.")] = 0,
    refit_growth: Annotated[float, typer.Option(
        help="Re-optimise hyperparameters when the labels grew by this factor.", min=1.0)] = 1.25,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    json_out: JsonOpt = None,
) -> None:
    """Time a QM9 replay run: fit and selection over the whole pool each iteration."""
    import json

    from bodisc.acquisition import ACQUISITIONS
    from bodisc.bench.replay import run_replay
    from bodisc.bench.surrogate import load_average, qm9_table

    if acquisition not in ACQUISITIONS or not ACQUISITIONS[acquisition].needs_model:
        models = sorted(n for n, s in ACQUISITIONS.items() if s.needs_model)
        raise BodiscError(f"--acquisition: {acquisition!r} is not a model-based strategy; "
                          f"allowed: {', '.join(models)}")
    X, y, note = qm9_table(target, min_rows=pool)
    if pool:
        X, y = X[:pool], y[:pool]
    typer.echo(f"pool: {len(y)} molecules ({note}); load {load_average():.2f}")
    result = run_replay(X, y, calls=calls, batch=batch, start=start, seed=seed,
                        acquisition=acquisition, refit_growth=refit_growth, device=device,
                        progress=lambda p: typer.echo(
                            f"iteration {p['iteration']:>3}: {p['calls']:>5} calls, best "
                            f"{p['best']:.3f}, fit {p['fit_s']:.2f} s, select "
                            f"{p['select_s']:.2f} s, elapsed {p['elapsed_s']:.1f} s"))
    result.update({"pool_data": note, "target": target, "load_average_end": load_average()})
    typer.echo(f"wall {result['wall_s']:.1f} s (fit {result['fit_s']:.1f} s, selection "
               f"{result['select_s']:.1f} s); best {result['best']:.3f}; calls to the pool's "
               f"best: {result['calls_to_max']}")
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n")
        typer.echo(f"wrote {json_out}")


def _parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
        except ValueError:
            raise typer.BadParameter(f"{text!r}: expected seeds like 0-4 or 0,2,5",
                                     param_hint="--seeds") from None
    return seeds


@bench_app.command("qm9-replay")
def bench_qm9_replay_cmd(
    targets: Annotated[str, typer.Option(help="Targets: dipole, gap_min, gap_max.")] =
        "dipole,gap_min,gap_max",
    methods: Annotated[str, typer.Option(help="Methods, comma-separated (default: all).")] = "",
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0-4.")] = "0-4",
    calls: Annotated[int, typer.Option(help="Oracle calls per run.", min=2)] = 2000,
    batch: Annotated[int, typer.Option(help="Molecules per iteration.", min=1)] = 50,
    start: Annotated[int, typer.Option(help="Random molecules labelled first.", min=1)] = 100,
    checkpoints: Annotated[str, typer.Option(help="Calls at which the top-1 % share is "
                                                  "reported.")] = "500,1000,2000",
    sample: Annotated[int, typer.Option(
        help="Pool: the seeded QM9 sample of this many molecules (descriptors computed "
             "where not cached; 130831 is all of QM9). 0: every molecule already in the "
             "descriptor cache.", min=0)] = 0,
    sample_seed: Annotated[int, typer.Option(help="Seed of --sample.")] = 0,
    workers: Annotated[int, typer.Option(help="Workers for missing descriptors.", min=1)] = 2,
    parallel: Annotated[int, typer.Option(help="Runs at once, each in its own process.",
                                          min=1)] = 1,
    cache_dir: Annotated[Path | None, typer.Option(help="Descriptor cache root.")] = None,
    out: Annotated[Path, typer.Option(
        help="Folder for the pool (QM9 indices, fixed at the first run), the runs (JSON "
             "lines, resumable), table and plot.")] = Path("runs/bench/qm9-replay"),
    json_out: JsonOpt = None,
    report_only: Annotated[bool, typer.Option(
        "--report-only", help="Run nothing: table, plot and JSON from the runs already in "
                              "--out (missing runs are named).")] = False,
) -> None:
    """Sample efficiency on QM9 replay: bodisc against the baselines, per target and seed.

    Baselines: random, the cheap xTB proxy, MolPAL's random forest, a Tanimoto GP.
    """
    import json

    from bodisc.bench import efficiency as eff
    from bodisc.data.qm9 import qm9_sample_indices

    target_list = [t.strip() for t in targets.split(",") if t.strip()]
    method_list = [m.strip() for m in methods.split(",") if m.strip()] or list(eff.METHODS)
    for name, allowed, hint in ((target_list, eff.TARGETS, "--targets"),
                                (method_list, eff.METHODS, "--methods")):
        for value in name:
            if value not in allowed:
                raise typer.BadParameter(f"{value!r}; choose from: {', '.join(allowed)}",
                                         param_hint=hint)
    try:
        checks = tuple(int(c) for c in checkpoints.split(","))
    except ValueError:
        raise typer.BadParameter(f"{checkpoints!r}: expected calls like 500,1000,2000",
                                 param_hint="--checkpoints") from None
    out.mkdir(parents=True, exist_ok=True)
    pool_file = out / "qm9_replay_pool.json"  # the pool of this folder's runs, kept fixed
    if pool_file.exists():
        indices = json.loads(pool_file.read_text())["qm9_index"]
    else:
        indices = qm9_sample_indices(sample, sample_seed) if sample else None
    t0 = time.perf_counter()
    pool = eff.load_pool(indices, workers=workers, cache_dir=cache_dir)
    typer.echo(f"pool: {pool.note} ({time.perf_counter() - t0:.0f} s)")
    if not pool_file.exists():
        pool_file.write_text(json.dumps({"note": pool.note,
                                         "qm9_index": pool.qm9_index.tolist()}) + "\n")
    records = eff.run_benchmark(
        pool, target_list, method_list, _parse_seeds(seeds), calls=calls, batch=batch,
        start=start, checkpoints=checks, records_path=out / "qm9_replay.jsonl",
        parallel=parallel, run_missing=not report_only,
        progress=lambda r: typer.echo(
            f"{r['target']:>8} {r['method']:>22} seed {r['seed']}: "
            + ", ".join(f"top-1 % @{c} {r.get(f'top1pct_recall_{c}') or 0:.2f}" for c in checks)
            + f", best {r['best']:.3f}, calls to best {r['calls_to_max']}, "
              f"{r['wall_s']:.0f} s"))
    have = {(r["target"], r["method"], r["seed"]) for r in records}
    missing = [f"{t}/{m}/{s}" for t in target_list for m in method_list
               for s in _parse_seeds(seeds) if (t, m, s) not in have]
    if missing:
        typer.echo(f"not run ({len(missing)}): {', '.join(missing)}")
    if not records:
        raise typer.BadParameter(f"no runs in {out / 'qm9_replay.jsonl'} for these targets, "
                                 "methods and seeds", param_hint="--report-only")
    rows = eff.summarise(records, checks)
    table = eff.format_table(rows, checks)
    (out / "qm9_replay.md").write_text(f"Pool: {pool.note}.\n\n{table}\n")
    eff.plot_curves(records, out / "qm9_replay.png")
    typer.echo(table)
    if json_out:
        payload = {"pool": pool.note, "settings": {
            "calls": calls, "batch": batch, "start": start, "checkpoints": list(checks),
            "sample": sample, "sample_seed": sample_seed}, "summary": rows,
            "not_run": missing, "runs": records}
        json_out.write_text(json.dumps(payload, indent=1) + "\n")
        typer.echo(f"wrote {json_out}")


#: Methods of ``bodisc bench causal --part b``: the causal design before GP + UCB, the
#: interventions alone, and the baselines they are measured against.
CAUSAL_REPLAY_METHODS = "random,cheap,gp_ucb,causal_gp_ucb,intervention"


@bench_app.command("causal")
def bench_causal_cmd(
    part: Annotated[str, typer.Option(help="a: subset curves (graph distance against "
                                           "iterations); b: the design and interventions "
                                           "on the QM9 replay.")] = "a",
    repeats: Annotated[int, typer.Option(help="(a) Repeats per design.", min=1)] = 10,
    iterations: Annotated[int, typer.Option(help="(a) Iterations per repeat.", min=1)] = 40,
    seeds: Annotated[str, typer.Option(help="(b) Seeds, e.g. 0-2.")] = "0-2",
    targets: Annotated[str, typer.Option(help="(b) Targets.")] = "dipole,gap_min,gap_max",
    methods: Annotated[str, typer.Option(help="(b) Methods.")] = CAUSAL_REPLAY_METHODS,
    sample: Annotated[int, typer.Option(help="(b) Pool: a seeded QM9 sample of this many "
                                             "(130831: all of QM9).", min=1)] = 130_831,
    parallel: Annotated[int, typer.Option(help="(b) Runs at once.", min=1)] = 2,
    out: Annotated[Path, typer.Option(help="Folder of the results.")] = Path(
        "docs/results/causal"),
    json_out: JsonOpt = None,
    report_only: Annotated[bool, typer.Option(
        "--report-only", help="(b) Run nothing: the table from the runs in --out.")] = False,
) -> None:
    """Causal active learning (Fox and Ghosh 2024): subset curves and the QM9 replay."""
    if part not in ("a", "b"):
        raise typer.BadParameter(f"{part!r}; choose a or b", param_hint="--part")
    out.mkdir(parents=True, exist_ok=True)
    if part == "a":
        from bodisc.bench.causal import run_part_a

        run_part_a(json_out or out / "subset_curves.json", repeats=repeats,
                   iterations=iterations, figure=out / "subset_curves.png", echo=typer.echo)
        return
    bench_qm9_replay_cmd(
        targets=targets, methods=methods, seeds=seeds, calls=2000, batch=50, start=100,
        checkpoints="500,1000,2000", sample=sample, sample_seed=0, workers=2,
        parallel=parallel, cache_dir=None, out=out / "replay", json_out=json_out,
        report_only=report_only)


@bench_app.command("objectives")
def bench_objectives_cmd(
    tasks: Annotated[str, typer.Option(help="Tasks: dipole_gap_pareto, dipole_constrained.")]
        = "dipole_gap_pareto,dipole_constrained",
    methods: Annotated[str, typer.Option(help="Methods (default: every method of each "
                                              "task).")] = "",
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0-4.")] = "0-4",
    calls: Annotated[int, typer.Option(help="Oracle calls per run.", min=2)] = 2000,
    sample: Annotated[int, typer.Option(
        help="Pool: a seeded QM9 sample of this many (0: every molecule in the descriptor "
             "cache, all of QM9).", min=0)] = 0,
    parallel: Annotated[int, typer.Option(help="Runs at once.", min=1)] = 1,
    out: Annotated[Path, typer.Option(help="Folder of the runs (JSON lines, resumable) and "
                                           "the table.")] = Path("runs/bench/objectives"),
    report_only: Annotated[bool, typer.Option(
        "--report-only", help="Run nothing: table, figure and JSON from the runs already "
                              "in the folder (of the methods and seeds asked for).")] = False,
    json_out: JsonOpt = None,
) -> None:
    """Several objectives and a constraint on QM9 replay (Pareto recall, hypervolume)."""
    import json

    from bodisc.bench import efficiency as eff
    from bodisc.bench import objectives as mo
    from bodisc.data.qm9 import qm9_sample_indices

    task_list = [t.strip() for t in tasks.split(",") if t.strip()]
    for t in task_list:
        if t not in mo.TASKS:
            raise typer.BadParameter(f"{t!r}; choose from: {', '.join(mo.TASKS)}",
                                     param_hint="--tasks")
    method_list = [m.strip() for m in methods.split(",") if m.strip()] or None
    known = sorted({m for t in task_list for m in mo.METHODS[t]})
    for m in method_list or ():
        if m not in known:
            raise typer.BadParameter(f"{m!r}; choose from: {', '.join(known)}",
                                     param_hint="--methods")
    out.mkdir(parents=True, exist_ok=True)
    pool = eff.load_pool(qm9_sample_indices(sample, 0) if sample else None)
    figures = mo.pool_figures(pool)
    typer.echo(f"pool: {pool.note}; Pareto top {len(figures['pareto_top'])} "
               f"({figures['pareto_layers']} layers), front {len(figures['front'])}, "
               f"feasible top 1 % {len(figures['feasible_top'])} "
               f"(from {figures['feasible_threshold']:.2f} D)")
    records = mo.run_benchmark(
        pool, task_list, _parse_seeds(seeds), method_list, calls=calls, parallel=parallel,
        records_path=out / "objectives.jsonl", run_missing=not report_only,
        progress=lambda r: typer.echo(
            f"{r['task']} {r['method']} seed {r['seed']}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in r.items()
                if k.startswith(("pareto_recall", "front_recall", "hv_fraction",
                                 "top1pct_recall", "infeasible")) and v is not None)
            + f" ({r['wall_s']:.0f} s)"))
    rows = mo.summarise(records)
    table = mo.format_table(rows)
    (out / "objectives.md").write_text(f"Pool: {pool.note}.\n\n{table}\n")
    mo.write_figure(rows, out / "objectives.png")
    typer.echo(table)
    if json_out:
        payload = {"pool": pool.note, "settings": {"calls": calls, "batch": 50, "start": 100,
                                                   "sample": sample},
                   "pool_figures": {"pareto_top": len(figures["pareto_top"]),
                                    "pareto_layers": figures["pareto_layers"],
                                    "front": len(figures["front"]),
                                    "hv_reference": figures["hv_reference"].tolist(),
                                    "feasible_top": len(figures["feasible_top"]),
                                    "feasible_threshold": figures["feasible_threshold"]},
                   "summary": rows, "runs": records}
        json_out.write_text(json.dumps(payload, indent=1) + "\n")
        typer.echo(f"wrote {json_out}")


@bench_app.command("async")
def bench_async_cmd(
    sources: Annotated[str, typer.Option(
        help="Call-time sources: xtb, dft (times by molecule size), dft_any_size (any "
             "measured DFT time).")] = "dft",
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0-4.")] = "0-4",
    budget: Annotated[int, typer.Option(help="Oracle calls per campaign.", min=10)] = 100,
    workers: Annotated[int, typer.Option(help="Workers of both modes.", min=1)] = 4,
    batch: Annotated[int, typer.Option(help="Batch size of batch mode.", min=1)] = 8,
    scale: Annotated[float, typer.Option(help="Factor on every measured call time.",
                                         min=0.0)] = 0.1,
    times: Annotated[Path, typer.Option(help="Measured call times (JSON by source); "
                                             "measured first when missing.")]
        = Path("docs/results/async/oracle_times.json"),
    out: Annotated[Path, typer.Option(help="Folder of the campaigns' stores and the runs "
                                           "(JSON lines, resumable).")]
        = Path("runs/bench/async"),
    json_out: JsonOpt = None,
) -> None:
    """Batch against asynchronous campaigns on an oracle with measured call times."""
    import json

    from bodisc.bench import asynchronous as ab

    source_list = [x.strip() for x in sources.split(",") if x.strip()]
    for x in source_list:
        if x not in ab.SOURCES:
            raise typer.BadParameter(f"{x!r}; choose from: {', '.join(ab.SOURCES)}",
                                     param_hint="--sources")
    measured = json.loads(times.read_text()) if times.exists() else {}
    for x in dict.fromkeys(ab.SOURCE_TIMES[x][0] for x in source_list):  # measured once
        if x not in measured:
            typer.echo(f"measuring {x} call times (once) into {times}")
            measured[x] = ab.measure_times(x, echo=typer.echo)
            times.parent.mkdir(parents=True, exist_ok=True)
            times.write_text(json.dumps(measured, indent=1) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    records = ab.run_benchmark(
        source_list, _parse_seeds(seeds), times=times, out=out, budget=budget,
        workers=workers, batch=batch, scale=scale,
        progress=lambda r: typer.echo(
            f"{r['source']} {r['mode']} seed {r['seed']}: {r['wall_s']:.0f} s, utilisation "
            f"{r['utilisation']:.2f}, best {r['best']:.2f} D, top-10 AUC "
            f"{r['auc_top10']:.2f}"))
    table = ab.format_table(ab.summarise(records))
    (out / "async.md").write_text(table + "\n")
    ab.write_figure(records, out / "async.png")
    typer.echo(table)
    if json_out:
        payload = {"settings": {"budget": budget, "workers": workers, "batch": batch,
                                "scale": scale, "times": str(times)},
                   "summary": ab.summarise(records), "runs": records}
        json_out.write_text(json.dumps(payload, indent=1) + "\n")
        typer.echo(f"wrote {json_out}")


@bench_app.command("qm9-descriptors")
def bench_qm9_descriptors_cmd(
    sample: Annotated[int, typer.Option(
        help="The seeded QM9 sample of this many molecules (130831: all of QM9).",
        min=1, max=130831)] = 130831,
    sample_seed: Annotated[int, typer.Option(help="Seed of --sample.")] = 0,
    tier: Annotated[str, typer.Option(help="Descriptor tier: fast or full.")] = "fast",
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 2,
    cache_dir: Annotated[Path | None, typer.Option(help="Descriptor cache root.")] = None,
    export: Annotated[Path | None, typer.Option(
        help="Write the sample's descriptors to this compressed file, in the cache's "
             "format (bodisc/data/descriptors/qm9-fast-v1.npz ships it).")]
    = None,
) -> None:
    """QMex descriptors of QM9 on its own geometries: compute what is not cached, time it."""
    from bodisc.data.qm9 import export_descriptors, qm9_descriptors, qm9_sample_indices
    from bodisc.descriptors import TIERS

    if tier not in TIERS:
        raise typer.BadParameter(f"{tier!r}; choose from: {', '.join(TIERS)}",
                                 param_hint="--tier")
    indices = qm9_sample_indices(sample, sample_seed)
    t0 = time.perf_counter()
    last = [t0]

    def progress(p: Any) -> None:
        if time.perf_counter() - last[0] >= 60 or p.cached + p.computed == p.total:
            last[0] = time.perf_counter()
            typer.echo(f"{p.cached + p.computed}/{p.total} ({p.computed} computed, "
                       f"{p.failed} failed, {p.molecules_per_s:.1f} molecules/s)")

    frame = qm9_descriptors(indices, tier, workers=workers, cache_dir=cache_dir,
                            progress=progress)
    typer.echo(f"{len(frame)} molecules: {frame.attrs['computed']} computed, "
               f"{frame.attrs['cached']} cached, {len(frame.attrs['failures'])} failed; "
               f"{time.perf_counter() - t0:.0f} s with {workers} workers")
    if export is not None:
        path = export_descriptors(export, indices, tier, cache_dir)
        typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@bench_app.command("open-ended")
def bench_open_ended_cmd(
    config: Annotated[Path, typer.Argument(
        help="Campaign file: seeds, generator, oracle and budget of every method.",
        show_default=False)] = Path("campaigns/open_ended.toml"),
    methods: Annotated[str, typer.Option(
        help="Methods, comma-separated: mutate, ga, cheap, logei, ucb, thompson, staged "
             "(default: all).")] = "",
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0-4.")] = "0-4",
    rank_by: Annotated[str, typer.Option(
        help="Descriptor the 'cheap' method, and 'staged' in its first batches, rank "
             "candidates by.")] = "mu",
    generation_size: Annotated[int, typer.Option(
        help="Population of the genetic algorithm (JANUS: 5,000; scaled to the budget).",
        min=4)] = 20,
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option(
        help="Folder for the runs (resumable), the shared result cache, table and plot.")] =
        Path("runs/bench/open-ended"),
    json_out: JsonOpt = None,
) -> None:
    """Open-ended search: bodisc against random mutation and a genetic algorithm."""
    import json

    from bodisc.bench import open_ended as oe
    from bodisc.config import load_campaign

    cfg = load_campaign(config, _parse_overrides(set_ or []))
    method_list = [m.strip() for m in methods.split(",") if m.strip()] or list(oe.METHODS)
    for value in method_list:
        if value not in oe.METHODS:
            raise typer.BadParameter(f"{value!r}; choose from: {', '.join(oe.METHODS)}",
                                     param_hint="--methods")
    settings = oe.JanusSettings(generation_size=generation_size)
    budget = cfg.budget.oracle_calls
    records = oe.run_open_ended(
        cfg, str(config), method_list, _parse_seeds(seeds), out, rank_by, settings,
        progress=lambda r: typer.echo(
            f"{r['method']:>9} seed {r['seed']}: best {r['best']:.3f} "
            f"({r['best_smiles']}), top-10 AUC {r['auc_top10']:.3f}, {r['calls']} calls, "
            f"{r['failed']} failed, {r['wall_s']:.0f} s"),
        message=typer.echo)
    rows = oe.summarise(records, budget)
    unit = cfg.objective.unit
    table = oe.format_table(rows, budget, unit)
    (out / "open_ended.md").write_text(table + "\n")
    oe.plot_curves(records, out / "open_ended.png",
                   f"best {cfg.objective.property} so far ({unit})")
    typer.echo(table)
    if json_out:
        payload = {"campaign": str(config), "settings": {
            "budget": budget, "batch_size": cfg.acquisition.batch_size, "rank_by": rank_by,
            "ga": settings.__dict__}, "summary": rows, "runs": records}
        json_out.write_text(json.dumps(payload, indent=1) + "\n")
        typer.echo(f"wrote {json_out}")


@bench_app.command("oracle")
def bench_oracle_cmd(
    n: Annotated[int, typer.Option(help="QM9 molecules to label.", min=1)] = 40,
    workers: Annotated[int, typer.Option(help="Workers of the parallel runs.", min=1)] = 2,
    oracle: Annotated[str, typer.Option(help="Oracle name, as in a campaign file.")] =
        "xtb_dipole",
    options: Annotated[str, typer.Option(help="Oracle options as JSON.")] =
        '{"n_conformers": 2}',
    executors: Annotated[str, typer.Option(help="Comma-separated: local, dask.")] =
        "local,dask",
    scheduler: Annotated[str | None, typer.Option(
        help="Dask scheduler address (default: a LocalCluster).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the QM9 sample.")] = 0,
    json_out: JsonOpt = None,
) -> None:
    """Oracle throughput (molecules/s) of the local pool and Dask, against one worker."""
    import json

    from bodisc.bench.descriptors import qm9_sample
    from bodisc.bench.oracle import bench_oracle

    result = bench_oracle(qm9_sample(n, seed), oracle, json.loads(options), workers,
                          [e.strip() for e in executors.split(",") if e.strip()],
                          scheduler=scheduler)
    for run in result["runs"]:
        typer.echo(f"{run['executor']:>6} {run['workers']:>3} workers: "
                   f"{run['molecules_per_s']:.3f} molecules/s ({run['wall_s']:.1f} s, "
                   f"{run['failures']} failed, load {run['load_before']:.2f} -> "
                   f"{run['load_after']:.2f})")
    for name, ratio in result["ratios"].items():
        typer.echo(f"{name}: {ratio:.2f}")
    if json_out:
        json_out.write_text(json.dumps(result, indent=2, default=str))
        typer.echo(f"wrote {json_out}")


@bench_app.command("ingest")
def bench_ingest_cmd(
    rows: Annotated[int, typer.Option(help="QM9 rows in the label file.", min=1)] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the QM9 sample.")] = 0,
    json_out: JsonOpt = None,
) -> None:
    """Ingest throughput: seconds to read, check and commit a file of labels."""
    import json

    from bodisc.bench.ingest import bench_ingest

    result = bench_ingest(rows, seed)
    typer.echo(f"{result['molecules']} molecules ({result['rows']} rows): read and checked "
               f"in {result['read_s']:.1f} s, ingested in {result['ingest_s']:.1f} s "
               f"({result['rows_per_s']:.0f} rows/s), the same file again in "
               f"{result['again_s']:.1f} s ({result['unchanged_again']} unchanged)")
    if json_out:
        json_out.write_text(json.dumps(result, indent=2))
        typer.echo(f"wrote {json_out}")


@bench_app.command("library")
def bench_library_cmd(
    n: Annotated[int, typer.Option(help="QM9 molecules in the library file.", min=2)] = 20_000,
    sample: Annotated[int, typer.Option(help="Molecules timed with 1 and 2 workers.",
                                        min=1)] = 1_000,
    seed: Annotated[int, typer.Option(help="Seed of the QM9 samples.")] = 0,
    workers: Annotated[int, typer.Option(help="Workers of the killed run.", min=1)] = 2,
    kill_at: Annotated[float, typer.Option(help="Share committed when SIGKILL lands.",
                                           min=0.01, max=0.99)] = 0.5,
    root: Annotated[Path, typer.Option(help="Folder of the files and caches.")] = Path(
        "runs/bench/library"),
    json_out: JsonOpt = None,
) -> None:
    """Library featurisation: throughput with 1 and 2 workers; SIGKILL midway, restart."""
    import json

    from bodisc.bench.library import run

    result = run(n, sample, seed, workers, kill_at, root)
    for r in result["throughput"]:
        typer.echo(f"{r['workers']} worker(s): {r['molecules']} molecules in "
                   f"{r['elapsed_s']:.0f} s, {r['molecules_per_s']:.1f} mol/s")
    typer.echo(f"2 workers over 1: {result['speedup_2_over_1']:.2f}")
    k = result["resume"]
    typer.echo(f"{k['molecules']} molecules, killed with {k['committed_at_kill']} committed; "
               f"restart computed {k['computed_after_restart']}, "
               f"{k['recomputed_committed']} of them already committed; "
               f"cache holds {k['in_cache']} ({k['duplicates_in_cache']} duplicates)")
    if json_out:
        json_out.write_text(json.dumps(result, indent=1) + "\n")
        typer.echo(f"wrote {json_out}")


@bench_app.command("pool-memory", context_settings={"allow_extra_args": True,
                                                    "ignore_unknown_options": True})
def bench_pool_memory_cmd(ctx: typer.Context) -> None:
    """Memory of choosing a batch from a 1,000,000-row cached pool (synthetic rows).

    Options are those of ``python -m bodisc.bench.pool_memory --help`` (``--rows``,
    ``--dim``, ``--train``, ``--q``, ``--strategy``, ``--cache``, ``--out``).
    """
    from bodisc.bench.pool_memory import main as pool_memory

    pool_memory(list(ctx.args))


@bench_app.command("figures")
def bench_figures_cmd(
    only: Annotated[str | None, typer.Option(
        help="Comma-separated figure names (default: all); `bodisc bench figures --list`.")
                    ] = None,
    listing: Annotated[bool, typer.Option("--list", help="List the figures and their "
                                          "result files; draw nothing.")] = False,
) -> None:
    """Draw the benchmark pages' figures from their committed result files (runs nothing)."""
    from bodisc.bench.figures import PAGE_FIGURES, draw

    if listing:
        for name, spec in PAGE_FIGURES.items():
            typer.echo(f"{name}: {', '.join(spec.sources)} -> {spec.out} "
                       f"(docs/benchmarks/{spec.page})")
        return
    names = None if only is None else [n.strip() for n in only.split(",") if n.strip()]
    for path in draw(names):
        typer.echo(f"wrote {path}")


@bench_app.command("extrapolation")
def bench_extrapolation_cmd(
    data: Annotated[Path, typer.Option(help="Table (CSV) with SMILES, label, descriptors.")],
    descriptors: Annotated[str, typer.Option(
        help="Descriptor columns: 'a,b,c' or a range in table order, 'mw:dEbase'.")],
    categories: Annotated[Path | None, typer.Option(
        help="CSV of the ILR structure categories, same rows (default: from the SMILES).")]
    = None,
    splits: Annotated[Path | None, typer.Option(
        help="Split file (QMex format); default: property-range and cluster splits.")] = None,
    target: Annotated[str | None, typer.Option(help="Label column.")] = None,
    rows: Annotated[str | None, typer.Option(help="Split-file rows, e.g. 61-72.")] = None,
    models: Annotated[str | None, typer.Option(
        help="Comma-separated models (default: the benchmark's standard set, "
             "bodisc.bench.extrapolation.DEFAULT_MODELS).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the table, CSV and plot.")] =
        Path("runs/bench/extrapolation"),
    mlruns: Annotated[Path, typer.Option(help="MLflow store.")] = Path("mlruns"),
    seed: Annotated[int, typer.Option(help="Seed of generated splits and models.")] = 0,
    json_out: JsonOpt = None,
) -> None:
    """Extrapolation benchmark of the QMex/ILR paper: property-range and cluster splits."""
    from bodisc.bench.extrapolation import DEFAULT_MODELS, bench_extrapolation, write_results
    from bodisc.tracking.mlflow_tracker import log_bench_run

    models = models or ",".join(DEFAULT_MODELS)
    names = [m.strip() for m in models.split(",") if m.strip()]
    records = bench_extrapolation(
        data, descriptors, categories, splits, json_out, None, names, _parse_rows(rows),
        target=target, seed=seed,
        progress=lambda r: typer.echo(
            f"{r['split']:>10} n_in {r['n_in']:>4} {r['model']:>12}: "
            f"RMSE/sigma {r['rmse_over_sigma']:.3f}"),
    )
    paths = write_results(records, out)
    typer.echo(paths["md"].read_text())
    metrics = {f"rmse_over_sigma.{r['split']}.{r['n_in']}.{r.get('row', '')}.{r['model']}":
               r["rmse_over_sigma"] for r in records}
    run_id = log_bench_run(
        mlruns, "bench-extrapolation", f"extrapolation {Path(data).name}",
        {"data": str(data), "descriptors": descriptors, "splits": str(splits),
         "rows": str(rows), "models": models, "target": str(target), "seed": seed},
        metrics, list(paths.values()), warn=typer.echo)
    typer.echo(f"table: {paths['md']}  plot: {paths['png']}"
               + (f"  json: {json_out}" if json_out else "")
               + (f"  MLflow run: {run_id}" if run_id else ""))


@bench_app.command("extrapolation-qm9")
def bench_extrapolation_qm9_cmd(
    targets: Annotated[str, typer.Option(help="QM9 targets, comma-separated.")] =
        "dipole,alpha,gap",
    n: Annotated[int, typer.Option(help="QM9 molecules (seeded sample).", min=100)] = 5000,
    models: Annotated[str | None, typer.Option(
        help="Comma-separated models (default: the benchmark's standard set, "
             "bodisc.bench.extrapolation.DEFAULT_MODELS).")] = None,
    n_in: Annotated[str, typer.Option("--n-in", help="Training sizes.")] = "50,100,200,500",
    out: Annotated[Path, typer.Option(help="Folder for the table, CSV and plot.")] =
        Path("runs/bench/extrapolation-qm9"),
    mlruns: Annotated[Path, typer.Option(help="MLflow store.")] = Path("mlruns"),
    seed: Annotated[int, typer.Option(help="Seed of the sample, splits and models.")] = 0,
    workers: Annotated[int, typer.Option(help="Workers for missing descriptors.")] = 2,
    json_out: JsonOpt = None,
) -> None:
    """The extrapolation benchmark on QM9 targets, descriptors from xTB on QM9 geometries."""
    import json

    from bodisc.bench.extrapolation import DEFAULT_MODELS, qm9_extrapolation, write_results
    from bodisc.tracking.mlflow_tracker import log_bench_run

    models = models or ",".join(DEFAULT_MODELS)
    records = qm9_extrapolation(
        [t.strip() for t in targets.split(",")], n,
        [m.strip() for m in models.split(",") if m.strip()],
        [int(v) for v in n_in.split(",")], seed=seed, workers=workers,
        progress=lambda r: typer.echo(
            f"{r['split']:>10} n_in {r['n_in']:>4} {r['model']:>12}: "
            f"RMSE/sigma {r['rmse_over_sigma']:.3f}"),
    )
    paths = write_results(records, out)
    if json_out:
        json_out.write_text(json.dumps(records, indent=1) + "\n")
    metrics = {f"rmse_over_sigma.{r['target']}.{r['split']}.{r['n_in']}.{r['model']}":
               r["rmse_over_sigma"] for r in records}
    run_id = log_bench_run(mlruns, "bench-extrapolation-qm9", f"qm9 n={n}",
                           {"targets": targets, "n": n, "models": models, "seed": seed},
                           metrics, list(paths.values()), warn=typer.echo)
    typer.echo(f"table: {paths['md']}  plot: {paths['png']}"
               + (f"  MLflow run: {run_id}" if run_id else ""))


def _quiet_reporter(console: Any) -> Any:
    from bodisc.campaign import Reporter

    class Quiet(Reporter):
        def message(self, text: str) -> None:
            console.print(text)

    return Quiet()


def _rich_reporter(console: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from bodisc.campaign import Reporter

    class Rich(Reporter):
        def __init__(self) -> None:
            self.bar = Progress(
                TextColumn("iteration {task.fields[iteration]:>3} {task.fields[phase]:<11}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("oracle calls  best {task.fields[best]}  {task.fields[elapsed]}"),
                console=console, transient=False,
            )
            self.task: Any = None
            self.start = time.monotonic()

        def _fmt(self, best: float | None) -> str:
            return "-" if best is None else f"{best:.3f}"

        def _elapsed(self) -> str:
            s = int(time.monotonic() - self.start)
            return f"{s // 60:d}:{s % 60:02d} elapsed"

        def begin(self, budget: int, used: int, best: float | None) -> None:
            self.bar.start()
            self.task = self.bar.add_task(
                "campaign", total=budget, completed=used, iteration=0, phase="start",
                best=self._fmt(best), elapsed=self._elapsed(),
            )

        def phase(self, iteration: int, phase: str) -> None:
            self.bar.update(self.task, iteration=iteration, phase=phase,
                                 elapsed=self._elapsed())

        def progress(self, iteration: int, used: int, best: float | None) -> None:
            self.bar.update(self.task, completed=used, iteration=iteration,
                                 best=self._fmt(best), elapsed=self._elapsed())

        def message(self, text: str) -> None:
            self.bar.console.print(text)

        def end(self) -> None:
            self.bar.stop()

    return Rich()


def _print_front(console: Any, cfg: Any, summary: Any) -> None:
    """The non-dominated molecules of a campaign with several objectives."""
    from rich.table import Table

    names = list(summary.front[0][1])
    units = {o.property: o.unit for o in cfg.objectives}
    units.update({c.property: c.unit for c in cfg.constraints})
    wanted = ", ".join(f"{o.direction} {o.property}" for o in cfg.objectives)
    hv = "" if summary.hypervolume is None else f"; hypervolume {summary.hypervolume:.4g}"
    table = Table(title=f"{cfg.name}: non-dominated molecules ({wanted}; "
                        f"{len(summary.front)} on the front{hv})")
    table.add_column("#", justify="right")
    table.add_column("SMILES")
    for name in names:
        unit = units.get(name, "")
        table.add_column(f"{name} / {unit}" if unit else name, justify="right")
    table.add_column("iteration", justify="right")
    for i, (smiles, values, it) in enumerate(summary.front, 1):
        table.add_row(str(i), smiles, *(f"{values[n]:.3f}" for n in names), str(it))
    console.print(table)


def _print_summary(console: Any, cfg: Any, summary: Any, local: bool = True) -> None:
    from rich.table import Table

    from bodisc.tracking.mlflow_tracker import ui_command

    unit = cfg.objective.unit
    table = Table(title=f"{cfg.name}: best molecules ({cfg.objective.direction} "
                        f"{cfg.objective.property})")
    table.add_column("#", justify="right")
    table.add_column("SMILES")
    table.add_column(f"{cfg.objective.property} / {unit}" if unit else cfg.objective.property,
                     justify="right")
    table.add_column("iteration", justify="right")
    for i, (smiles, value, it) in enumerate(summary.best, 1):
        table.add_row(str(i), smiles, f"{value:.3f}", str(it))
    console.print(table)
    if summary.front:
        _print_front(console, cfg, summary)
    console.print(f"stopped: {summary.stop_reason}; {summary.calls_used} oracle calls "
                  f"({summary.failures} failed) in {summary.iterations} iterations")
    console.print(f"store:      {summary.store}")
    console.print(f"results:    {summary.csv}")
    best_csv = summary.csv.parent / "best_molecules.csv"
    if best_csv.exists():
        console.print(f"best:       {best_csv} (and best_molecules.png)")
    if summary.run_id:
        console.print(f"MLflow run: {summary.run_link or summary.run_id}")
        if summary.molecules_link:
            console.print(f"molecules:  {summary.molecules_link}")
        if local:  # a local store: the link works once the UI runs
            console.print(f"MLflow UI:  {ui_command(cfg.path('mlruns'))} (then open the link)")
    else:
        console.print("MLflow run: not logged (tracking unavailable); the next start logs it")


def main() -> None:
    """Entry point: run the app, turning bodisc errors into one line and an exit status."""
    try:
        status = app(standalone_mode=False)  # a typer.Exit inside comes back as its code
    except BodiscError as exc:
        print(f"bodisc: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # usage errors: click's, or those of the click typer vendors
        import click

        usage_errors: tuple[type[Exception], ...] = (click.ClickException,)
        try:
            from typer._click.exceptions import ClickException as VendoredClickException
        except ImportError:  # a typer that uses click itself
            pass
        else:
            usage_errors += (VendoredClickException,)
        if isinstance(exc, usage_errors):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    main()
