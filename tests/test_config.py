import subprocess
import sys
from pathlib import Path

import pytest

from bodisc.config import load_campaign
from bodisc.errors import ConfigError
from tests.conftest import TINY, write_campaign


def test_tiny_campaign_is_valid(tiny_campaign):
    cfg = load_campaign(tiny_campaign)
    assert cfg.name == "tiny"
    assert cfg.acquisition.batch_size == 3
    assert cfg.path("store").name == "store.sqlite"


def test_shipped_dipole_campaign_is_valid():
    cfg = load_campaign("campaigns/dipole.toml")
    assert cfg.objective.property == "dipole"


def test_config_is_frozen(tiny_campaign):
    cfg = load_campaign(tiny_campaign)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        cfg.acquisition.batch_size = 5


BAD = [
    # (replace this, with this, field named, words the message must contain)
    ('batch_size = 3', 'batch_size = 3\nbatchsize = 4', "acquisition.batchsize",
     "unknown field"),
    ('oracle_calls = 10', 'oracle_calls = "ten"', "budget.oracle_calls", "integer"),
    ('"CCO", "CC#N"', '"CCO", "C1CC"', "seed_molecules[1]", "not a valid molecule"),
    ('name = "logei"', 'name = "expected_awesomeness"', "acquisition.name",
     "greedy, intervention, logei, parego, qlognehvi, random, rank, thompson, ucb"),
    ('name = "xtb_dipole"', 'name = "dft_magic"', "oracle.name", "registered: "),
    ('"CCO", "CC#N"', '"CCO", "CCCCCCCC"', "seed_molecules[1]", "max_heavy_atoms"),
    ('"CCO", "CC#N"', '"CCO", "CCS"', "seed_molecules[1]", "allowed_elements"),
    ('"CCO", "CC#N"', '"CCO", "C[NH3+]"', "seed_molecules[1]", "charged"),
    ('oracle_calls = 10', 'oracle_calls = 2', "budget.oracle_calls", "at least one batch"),
    ('n_conformers = 2', 'n_conformers = 0', "oracle.options.n_conformers", "greater than"),
    ('n_conformers = 2', 'n_confs = 2', "oracle.options.n_confs", "unknown field"),
    ('direction = "maximize"', 'direction = "up"', "objective.direction",
     "'maximize' or 'minimize'"),
    ('names = ["mu", "homo", "lumo", "mw"]', 'names = ["mu", "charisma"]',
     "descriptors.names[1]", "unknown descriptor"),
    ('name = "logei"', 'name = "rank"\nrank_by = "dEw"', "acquisition.rank_by",
     "must be one of the campaign's descriptors"),
    ('name = "logei"', 'name = "ucb"\nwarmup_batches = 2\nrank_by = "lumo - dEw"',
     "acquisition.rank_by", "'dEw' must be one of the campaign's descriptors"),
    ('name = "logei"', 'name = "ucb"\ngreedy_until = 1.5', "acquisition.greedy_until",
     "less than or equal to 1"),
    ('[acquisition]', '[surrogate]\nmean = "proxy"\nproxy = "dEw"\n\n[acquisition]',
     "surrogate.proxy", "must be one of the campaign's descriptors: mu, homo"),
    ('[acquisition]', '[surrogate]\nmean = "proxy"\nproxy = "lumo - dEw"\n\n[acquisition]',
     "surrogate.proxy", "'dEw' must be one of the campaign's descriptors"),
    ('[acquisition]', '[surrogate]\nmean = "proxy"\nproxy = "x*lumo"\n\n[acquisition]',
     "surrogate.proxy", "factor 'x' is not a number"),
    ('max_heavy_atoms = 5', 'max_heavy_atoms = 5\nforbidden_substructures = ["[C"]',
     "generator.forbidden_substructures", "cannot parse the SMARTS"),
    ('max_heavy_atoms = 5', 'max_heavy_atoms = 5\nforbidden_substructures = ["[#8]"]',
     "seed_molecules[0]", "forbidden substructure [#8]"),
    ('allowed_elements = ["C", "N", "O"]', 'allowed_elements = ["C", "Xx"]',
     "generator.allowed_elements", "unknown element"),
    ('[acquisition]', '[surrogate]\nkind = "svm"\n\n[acquisition]', "surrogate.kind",
     "unknown surrogate kind; choose one of: gp, xgp, ilr, ilr_ridge, sparse"),
    ('[acquisition]', '[surrogate]\nkernel = "cosine"\n\n[acquisition]', "surrogate.kernel",
     "'matern52', 'matern32' or 'rbf'"),
    ('[acquisition]', '[surrogate]\ndevice = "tpu"\n\n[acquisition]', "surrogate.device",
     "'auto', 'cpu' or 'cuda'"),
    ('[acquisition]', '[design]\nkind = "causal"\n\n[acquisition]', "design.kind",
     "a causal design chooses from a [pool]"),
    ('[acquisition]', '[design]\nkind = "clever"\n\n[acquisition]', "design.kind",
     "'random' or 'causal'"),
    ('[acquisition]', '[design]\nclusters = 0\n\n[acquisition]', "design.clusters",
     "greater than or equal to 1"),
    ('max_heavy_atoms = 5', 'max_heavy_atoms = 5\nfilter_catalogs = ["PAINS", "PAINZ"]',
     "generator.filter_catalogs", "unknown filter catalogue(s) ['PAINZ']; allowed: PAINS_A"),
    ('max_heavy_atoms = 5', 'max_heavy_atoms = 5\nscaffold = "c1ccc"', "generator.scaffold",
     "cannot parse the SMARTS"),
    ('max_heavy_atoms = 5', 'max_heavy_atoms = 5\nsa_max = 0.5', "generator.sa_max",
     "greater than or equal to 1"),
    ('max_heavy_atoms = 5', 'max_heavy_atoms = 5\nsa_max = 12', "generator.sa_max",
     "less than or equal to 10"),
    ('[acquisition]', '[acquisition]\nfeasibility = 1.0', "acquisition.feasibility",
     "less than 1"),
    ('[acquisition]', '[acquisition]\npareto_depth = 3', "acquisition.pareto_depth",
     "only qlognehvi seeks layers beyond the front, not 'logei'"),
    ('[acquisition]', '[acquisition]\npareto_depth = 0', "acquisition.pareto_depth",
     "greater than or equal to 1"),
]


@pytest.mark.parametrize(("old", "new", "field", "words"), BAD)
def test_bad_campaign_files_give_one_line_naming_field_value_and_allowed(
        tmp_path, old, new, field, words):
    assert old in TINY
    path = write_campaign(tmp_path, TINY.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {field} = ")
    assert words in msg


def test_not_toml_and_missing_file(tmp_path):
    path = write_campaign(tmp_path, "name = [unclosed")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_campaign(path)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_campaign(tmp_path / "nope.toml")


def test_missing_required_field(tmp_path):
    path = write_campaign(tmp_path, TINY.replace('random_seed = 7\n', ''))
    with pytest.raises(ConfigError, match=r"random_seed = \(missing\): required"):
        load_campaign(path)


def test_cli_exits_2_with_one_line_and_writes_nothing(tmp_path):
    path = write_campaign(tmp_path, TINY.replace('name = "logei"', 'name = "nope"'))
    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", "campaign", str(path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "acquisition.name = 'nope'" in lines[0]
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "mlruns").exists()


def test_overrides_are_validated_like_the_file(tiny_campaign):
    cfg = load_campaign(tiny_campaign, {"acquisition.name": "ucb"})
    assert cfg.acquisition.name == "ucb"
    with pytest.raises(ConfigError, match="acquisition.batch_size"):
        load_campaign(tiny_campaign, {"acquisition.batch_size": -1})


# -- one list per name: the registries are what validation and the CLI offer ----------
def test_validation_offers_exactly_the_registered_surrogate_kinds(tiny_campaign):
    from bodisc.surrogates import SURROGATES

    for kind in SURROGATES:
        assert load_campaign(tiny_campaign, {"surrogate.kind": kind}).surrogate.kind == kind
    with pytest.raises(ConfigError) as info:
        load_campaign(tiny_campaign, {"surrogate.kind": "bogus"})
    err = info.value
    assert (err.field, err.value) == ("surrogate.kind", "bogus")
    assert err.allowed.split("choose one of: ")[1].split(", ") == list(SURROGATES)
    strategy = {"compare.seeds": [1], "compare.strategies": [
        {"name": "a", "acquisition": "ucb", "surrogate": "bogus"}]}
    with pytest.raises(ConfigError) as info:
        load_campaign(tiny_campaign, strategy)
    assert info.value.field == "compare.strategies[0].surrogate"
    assert info.value.allowed.split("choose one of: ")[1].split(", ") == list(SURROGATES)


def test_a_newly_registered_kind_is_valid_at_once(tiny_campaign):
    from bodisc.surrogates import SURROGATES, register_surrogate

    register_surrogate("scratch_config_kind", description="test")(lambda *a, **k: None)
    try:
        cfg = load_campaign(tiny_campaign, {"surrogate.kind": "scratch_config_kind"})
        assert cfg.surrogate.kind == "scratch_config_kind"
    finally:
        SURROGATES.pop("scratch_config_kind")


def test_the_cli_help_names_exactly_the_registered_kinds():
    import typer.main

    from bodisc.cli import SURROGATE_CHOICES, app
    from bodisc.surrogates import SURROGATES

    assert tuple(SURROGATES) == SURROGATE_CHOICES
    for name in ("validate", "campaign", "compare"):
        command = typer.main.get_command(app).commands[name]
        help_text = next(p for p in command.params if p.name == "set_").help
        listed = help_text.split("surrogate.kind: one of ")[1].rstrip(".").split(", ")
        assert listed == list(SURROGATES)


def test_defaults_and_choices_have_one_source():
    import typing

    import numpy as np

    from bodisc.acquisition import DEFAULT_BETA, AcquisitionContext
    from bodisc.config import AcquisitionConfig, SurrogateConfig
    from bodisc.surrogates import (
        DEFAULT_DEVICE,
        DEFAULT_KERNEL,
        DEFAULT_PRECISION,
        DEVICES,
        KERNELS,
        PRECISIONS,
    )
    from bodisc.surrogates.gp import MEANS

    ctx = AcquisitionContext(np.zeros((1, 1)), 1, 0.0, np.random.default_rng(0))
    assert AcquisitionConfig().beta == DEFAULT_BETA == ctx.beta
    fields = SurrogateConfig.model_fields
    for name, choices, default in (("kernel", KERNELS, DEFAULT_KERNEL),
                                   ("device", DEVICES, DEFAULT_DEVICE),
                                   ("precision", PRECISIONS, DEFAULT_PRECISION),
                                   ("mean", MEANS, "constant")):
        assert typing.get_args(fields[name].annotation) == choices
        assert fields[name].default == default


# -- several objectives and constraints ------------------------------------------------
#: TINY with two objectives (the dipole and the xTB gap of the same call) and qLogNEHVI.
TWO = TINY.replace('[objective]\nproperty = "dipole"\ndirection = "maximize"\nunit = "D"\n',
                   '[[objectives]]\nproperty = "dipole"\ndirection = "maximize"\nunit = "D"\n\n'
                   '[[objectives]]\nproperty = "gap"\ndirection = "maximize"\nunit = "eV"\n'
                   ).replace('name = "logei"', 'name = "qlognehvi"')
CONSTRAINT = '\n[[constraints]]\nproperty = "{p}"\n{bounds}\n'

BAD_SEVERAL = [
    # (the campaign text, field named, words the message must contain)
    (TINY.replace('property = "dipole"', 'property = "polarity"'), "objective.property",
     "oracle 'xtb_dipole' returns 'dipole', 'gap', 'homo', 'lumo'"),
    (TWO.replace('property = "gap"', 'property = "logP"'), "objectives[1].property",
     "oracle 'xtb_dipole' returns 'dipole', 'gap', 'homo', 'lumo'"),
    (TWO.replace('property = "gap"', 'property = "dipole"'), "objectives[1].property",
     "is already objectives[0]; each property can be one objective"),
    (TWO + CONSTRAINT.format(p="gap", bounds="min = 7.0\nmax = 5.0"), "constraints[0]",
     "min (7) must be at most max (5)"),
    (TWO + CONSTRAINT.format(p="gap", bounds=""), "constraints[0]", "give min, max or both"),
    (TWO + CONSTRAINT.format(p="toxicity", bounds="max = 1"), "constraints[0].property",
     "returns 'dipole', 'gap', 'homo', 'lumo', 'sa_score'"),
    (TWO + CONSTRAINT.format(p="sa_score", bounds="min = 2"), "constraints[0].min",
     "sa_score takes max only"),
    (TWO.replace('name = "qlognehvi"', 'name = "logei"'), "acquisition.name",
     "2 objectives need a multi-objective acquisition: parego, qlognehvi (or random)"),
    (TINY.replace('name = "logei"', 'name = "parego"'), "acquisition.name",
     "parego needs two or more [[objectives]]; this campaign has one"),
    (TWO.replace('[acquisition]', '[surrogate]\nkind = "ilr"\n\n[acquisition]'),
     "surrogate.kind", "need kind = 'gp'"),
    (TINY.replace('[objective]', '[[objectives]]\nproperty = "gap"\n\n[objective]'),
     "objectives", "give [objective] (one) or [[objectives]] (several), not both"),
]


@pytest.mark.parametrize(("text", "field", "words"), BAD_SEVERAL)
def test_bad_objectives_and_constraints_give_one_line(tmp_path, text, field, words):
    path = write_campaign(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {field}"), msg
    assert words in msg, msg


def test_one_objective_file_reads_as_one_objective_and_round_trips(tiny_campaign):
    from bodisc.config import CampaignConfig

    cfg = load_campaign(tiny_campaign)
    assert cfg.objectives == (cfg.objective,) and cfg.constraints == ()
    assert not cfg.multi_objective and cfg.sa_max is None
    again = CampaignConfig.model_validate(cfg.as_dict())  # as a store keeps it
    assert again == cfg


def test_two_objectives_and_an_sa_constraint(tmp_path):
    from bodisc.config import CampaignConfig

    path = write_campaign(tmp_path, TWO + CONSTRAINT.format(p="sa_score", bounds="max = 4.5")
                          + CONSTRAINT.format(p="gap", bounds="min = 6.5"))
    cfg = load_campaign(path)
    assert [o.property for o in cfg.objectives] == ["dipole", "gap"]
    assert cfg.objective.property == "dipole" and cfg.multi_objective
    assert cfg.sa_max == 4.5  # the SA constraint is the generator's exact filter
    assert [c.property for c in cfg.modelled_constraints] == ["gap"]
    again = CampaignConfig.model_validate(cfg.as_dict())
    assert again.objectives == cfg.objectives and again.constraints == cfg.constraints


def test_shipped_dipole_gap_campaign_is_valid():
    cfg = load_campaign("campaigns/dipole_gap.toml")
    assert [(o.property, o.direction) for o in cfg.objectives] == [
        ("dipole", "maximize"), ("gap", "maximize")]
    assert cfg.sa_max == 4.5 and cfg.acquisition.name == "qlognehvi"
    dipole = load_campaign("campaigns/dipole.toml")
    assert cfg.generator.forbidden_substructures == dipole.generator.forbidden_substructures


def test_bad_objective_exits_2_on_the_command_line_and_writes_nothing(tmp_path):
    path = write_campaign(tmp_path, TWO.replace('property = "gap"', 'property = "dipole"'))
    proc = subprocess.run([sys.executable, "-m", "bodisc.cli", "campaign", str(path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "objectives[1].property = 'dipole'" in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "campaigns").glob("*.toml")),
    ids=lambda p: p.name)
def test_every_shipped_campaign_file_is_valid(path):
    cfg = load_campaign(path)
    assert cfg.name and cfg.budget.oracle_calls > 0
