"""``mapdiff experiment run|compare|deploy``"""

from __future__ import annotations

import click

from mapdiff_cli.options import fail, quiet_option


def _options_of(stage: str) -> set[str]:
    """The option names of ``mapdiff STAGE`` (what an experiment's parameters may set)."""
    from mapdiff_cli.main import cli

    command = cli.get_command(None, stage)
    skip = {"quiet", "output", "shard", "run_id", "store_url", "help"}
    return {p.name for p in command.params if isinstance(p, click.Option)} - skip


@click.group(short_help="Run, compare and deploy experiments (experiments/EXP.toml).")
def experiment():
    """An experiment is a definition (experiments/EXP.toml: an id, the version of each module, the
    stages' parameters, the data groups) from which a run is rebuilt exactly; see
    mapdiff.experiment."""


@experiment.command()
@click.argument("definition", metavar="EXP.toml|manifest.json")
@click.option("-o", "--output", "out_dir", metavar="DIR", help="The run's folder [runs/ID].")
@quiet_option
def run(definition, out_dir, quiet):
    """Run the experiment on its data groups; write every output and manifest.json (inputs'
    hashes, parameters, package version, git commit, seeds, each stage's time and peak memory,
    the scores). A manifest given instead of a definition reruns that run, to the same bytes."""
    from mapdiff import experiment as ex
    from mapdiff.errors import MapdiffError

    try:
        exp = ex.load(definition, options_of=_options_of)
        manifest = ex.run(exp, out_dir or f"runs/{exp.id}", echo=lambda m: None if quiet else click.echo(m, err=True))
    except MapdiffError as exc:
        fail(exc)
    if not quiet:
        click.echo(f"{exp.id}: {len(manifest['groups'])} data group(s); manifest in {out_dir or f'runs/{exp.id}'}"
                   "/manifest.json", err=True)


@experiment.command()
@click.argument("a", metavar="EXP_A")
@click.argument("b", metavar="EXP_B")
@click.option("--runs", "runs_dir", default="runs", show_default=True, metavar="DIR", help="Where the runs are.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def compare(a, b, runs_dir, as_json):
    """Per data group and stage, the time and score deltas of EXP_B against EXP_A (their runs'
    manifests: runs/EXP/manifest.json, or the paths of the manifests)."""
    import json
    from pathlib import Path

    from mapdiff.errors import InputError
    from mapdiff.experiment import compare as deltas

    def manifest(name):
        path = Path(name) if name.endswith(".json") else Path(runs_dir) / name / "manifest.json"
        if not path.is_file():
            fail(InputError(f"{path}: no manifest; run the experiment first (mapdiff experiment run)"))
        return json.loads(path.read_text())

    rows = deltas(manifest(a), manifest(b))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'group':<12} {'stage':<10} {'metric':<28} {a:>12} {b:>12} {'delta':>12}")
    for r in rows:
        click.echo(f"{r['group']:<12} {r['stage']:<10} {r['metric']:<28} {r['a']:>12.4g} {r['b']:>12.4g} "
                   f"{r['delta']:>+12.4g}")


@experiment.command()
@click.argument("definition", metavar="EXP.toml")
@click.option("--env", required=True, type=click.Choice(["dev", "qa", "prod"]), help="The environment beside which "
              "the experiment's stacks go.")
def deploy(definition, env):
    """Deploy the experiment's module stacks beside ENV's (QaExp1TravelStack, ...): print the
    plan (make deploy per module, with its version) and synthesize the stacks. Deploying needs
    AWS credentials (make deploy stops without them); here the synthesized templates are the
    result."""
    import subprocess
    import sys
    from pathlib import Path

    from mapdiff import experiment as ex
    from mapdiff.errors import InputError, MapdiffError

    try:
        exp = ex.load(definition, options_of=_options_of)
    except MapdiffError as exc:
        fail(exc)
    script = Path("deployments/deploy.py")
    if not script.is_file():
        fail(InputError("deployments/deploy.py: not found; run mapdiff experiment deploy from the repository's root"))
    for module, version in exp.modules.items():
        click.echo(f"git checkout {version} && make deploy PROJ_ENV={env} EXPID={exp.id} MODULES={module}")
    done = subprocess.run([sys.executable, str(script), "synth", "--env", env, "--expid", exp.id], check=False)
    sys.exit(done.returncode)
