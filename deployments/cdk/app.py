"""The CDK app: ``cdk synth -c env=dev|qa|prod [-c expid=Exp1]`` (``make synth`` in
deployments/). Without an experiment: the common stack and the four module stacks; with one,
the module stacks of the experiment beside the environment's (they read its common stack's
parameters)."""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # (cdk runs this file as a script)

from deployments.cdk.common import CommonStack  # noqa: E402
from deployments.cdk.config import MODULES, Settings, SettingsError, settings  # noqa: E402
from deployments.cdk.modules import ModuleStack  # noqa: E402
from deployments.cdk.naming import stack_name  # noqa: E402


def build(app: cdk.App, s: Settings) -> dict[str, cdk.Stack]:
    """The stacks of ``s`` in ``app``, by module name (``common`` too, without an experiment).
    Templates are synthesized without the bootstrap stack's assets (none are needed: the image
    comes from the common stack's repository)."""
    env = cdk.Environment(region=s.region)
    stacks: dict[str, cdk.Stack] = {}
    if s.expid is None:
        stacks["common"] = CommonStack(app, stack_name(s, "common"), settings=s, env=env,
                                       synthesizer=cdk.BootstraplessSynthesizer())
    for module in MODULES:
        stacks[module] = ModuleStack(app, stack_name(s, module), settings=s, module=module, env=env,
                                     synthesizer=cdk.BootstraplessSynthesizer())
    for stack in stacks.values():
        cdk.Tags.of(stack).add("mapdiff:env", s.env)
        cdk.Tags.of(stack).add("mapdiff:experiment", s.expid or "none")
    return stacks


def main() -> None:
    app = cdk.App()
    try:
        s = settings(app.node.try_get_context("env"), app.node.try_get_context("expid"))
    except SettingsError as exc:
        print(f"deployments: error: {exc}", file=sys.stderr)
        sys.exit(1)
    build(app, s)
    app.synth()


if __name__ == "__main__":
    main()
