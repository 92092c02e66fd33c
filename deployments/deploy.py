"""What ``make build`` and ``make deploy`` run (the only entry points: nobody types cdk commands
and forgets a context value).

    python deployments/deploy.py synth --env qa [--expid Exp1]
    python deployments/deploy.py deploy --env qa [--expid Exp1] [--modules travel,video]

``synth`` writes the CloudFormation templates to ``deployments/cdk/cdk.out/{env}[-{expid}]``.
``deploy`` needs AWS credentials: it stops with one line when there are none. With them it would
run the database migrations (``mapdiff tasks migrate`` against the common stack's database),
``cdk deploy`` the stacks from the synthesized templates, and push the image to the common
stack's repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CDK = ROOT / "deployments" / "cdk"


def _fail(message: str) -> None:
    print(f"deployments: error: {message}", file=sys.stderr)
    sys.exit(1)


def synth(env: str, expid: str | None) -> Path:
    """Synthesize the app for ``env`` (and ``expid``) into its own output folder."""
    sys.path.insert(0, str(ROOT))
    from deployments.cdk.config import SettingsError, settings

    try:
        s = settings(env, expid)
    except SettingsError as exc:
        _fail(str(exc))
    out = CDK / "cdk.out" / s.prefix
    context = {"env": env, **({"expid": expid} if expid else {})}
    environ = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(out),
               "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    done = subprocess.run([sys.executable, str(CDK / "app.py")], env=environ, check=False)
    if done.returncode != 0:
        sys.exit(done.returncode)
    stacks = sorted(p.stem.removesuffix(".template") for p in out.glob("*.template.json"))
    print(f"synthesized {s.prefix}: {', '.join(stacks)}")
    return out


def credentials() -> str:
    """The AWS account the credentials in the environment belong to; one line and exit 1 when
    there are none (or they are refused)."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        _fail("boto3 is not installed (pip install -e '.[deploy]')")
    try:
        return boto3.client("sts").get_caller_identity()["Account"]
    except (BotoCoreError, ClientError) as exc:
        _fail(f"no usable AWS credentials ({exc}); make deploy needs the deploy role's credentials "
              "(in CI: the OIDC role of .github/workflows/deploy.yml); nothing was deployed")
    return ""


def deploy(env: str, expid: str | None, modules: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    from deployments.cdk.config import MODULES, SettingsError, settings

    try:
        s = settings(env, expid)
    except SettingsError as exc:
        _fail(str(exc))
    unknown = [m for m in modules if m not in (*MODULES, "common")]
    if unknown:
        _fail(f"--modules must be among common, {', '.join(MODULES)}; found {', '.join(unknown)}")
    account = credentials()  # before any work: nothing is built for an account that cannot be reached
    out = synth(env, expid)
    if shutil.which("npx") is None:
        _fail("the AWS CDK CLI is needed to deploy (npx aws-cdk); install Node.js")
    stacks = [p.stem.removesuffix(".template") for p in out.glob("*.template.json")]
    if modules:
        stacks = [s for s in stacks if any(s.lower().endswith(f"{m}stack") for m in modules)]
    print(f"deploying to account {account}: {', '.join(stacks)}")
    subprocess.run(["npx", "--yes", "aws-cdk@2", "deploy", "--app", str(out), "--require-approval", "never",
                    *stacks], check=True)
    if not modules or "video" in modules:
        _migrate(s)


def _migrate(s) -> None:
    """Run the database migrations (the task and results stores' schema, PostGIS) as the video
    module's migrate job, inside the VPC where the database is, and wait for it."""
    import time

    import boto3

    batch = boto3.client("batch")
    job = batch.submit_job(jobName=f"{s.prefix}-video-migrate", jobQueue=f"{s.prefix}-video-queue",
                           jobDefinition=f"{s.prefix}-video-migrate")["jobId"]
    while (status := batch.describe_jobs(jobs=[job])["jobs"][0]["status"]) not in ("SUCCEEDED", "FAILED"):
        time.sleep(10)
    if status != "SUCCEEDED":
        _fail(f"the migrations failed (AWS Batch job {job}); the stacks are deployed, the database is not migrated")
    print("migrations: done")


def integration(env: str, expid: str | None, modules: list[str]) -> None:
    """Run each module's state machine on a small simulated fleet and check that it succeeds: the
    stages before each module run here first and their files go to
    ``s3://{bucket}/integration/{prefix}/{run}/local``; each module reads those and writes under
    ``.../{module}``."""
    import tempfile
    import time

    sys.path.insert(0, str(ROOT))
    from deployments.cdk.config import MODULES, SettingsError, settings

    try:
        s = settings(env, expid)
    except SettingsError as exc:
        _fail(str(exc))
    modules = modules or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        _fail(f"--modules must be among {', '.join(MODULES)}; found {', '.join(unknown)}")
    account = credentials()
    import boto3

    region = boto3.session.Session().region_name or s.region
    bucket = boto3.client("ssm").get_parameter(Name=f"/{env}/common/data-bucket")["Parameter"]["Value"]
    run = time.strftime("%Y%m%dT%H%M%S")
    base = f"s3://{bucket}/integration/{s.prefix}/{run}"
    with tempfile.TemporaryDirectory() as tmp:
        _local_pipeline(Path(tmp))
        import fsspec

        fsspec.filesystem("s3").put(f"{tmp}/", f"{base}/local", recursive=True)
    inputs = json.loads((ROOT / "deployments" / "integration" / "inputs.json").read_text())
    sfn = boto3.client("stepfunctions")
    for module in modules:
        args = {step: text.format(local=f"{base}/local", out=f"{base}/{module}")
                for step, text in inputs[module].items()}
        arn = f"arn:aws:states:{region}:{account}:stateMachine:{s.prefix}-{module}-pipeline"
        execution = sfn.start_execution(stateMachineArn=arn, name=f"integration-{run}",
                                        input=json.dumps({"args": args}))["executionArn"]
        print(f"{module}: started {execution}")
        while (status := sfn.describe_execution(executionArn=execution)["status"]) == "RUNNING":
            time.sleep(20)
        if status != "SUCCEEDED":
            _fail(f"{module}: the integration run ended {status} ({execution})")
        print(f"{module}: {status}")


def _local_pipeline(out: Path) -> None:
    """The inputs every module's integration run reads: a small simulation and the stages
    before each module, run here."""
    steps = [
        ["network", str(ROOT / "fixtures" / "helsinki.osm.pbf"), "-o", str(out / "roads.gpkg")],
        ["simulate", "--map", str(out / "roads.gpkg"), "-o", str(out / "sim"), "--vehicles", "4", "--seed", "1"],
        ["match", str(out / "sim" / "traces.parquet"), "--map", str(out / "sim" / "map.gpkg"), "-o",
         str(out / "matched.parquet"), "--paths", str(out / "paths.parquet")],
        ["coverage", str(out / "paths.parquet"), "-o", str(out / "coverage.parquet")],
        ["observe", str(out / "sim" / "detections.parquet"), "--matched", str(out / "matched.parquet"), "--camera",
         str(out / "sim" / "camera.json"), "--map", str(out / "sim" / "map.gpkg"), "-o",
         str(out / "observations.parquet")],
        ["locate", str(out / "observations.parquet"), "-o", str(out / "objects.parquet")],
    ]
    for step in steps:
        subprocess.run([sys.executable, "-m", "mapdiff_cli.main", *step, "-q"], check=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="deployments/deploy.py")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("synth", "deploy", "integration"):
        p = sub.add_parser(name)
        p.add_argument("--env", required=True)
        p.add_argument("--expid")
        if name != "synth":
            p.add_argument("--modules", default="", help="comma-separated modules (default: all)")
    args = parser.parse_args(argv)
    if args.command == "synth":
        synth(args.env, args.expid)
        return
    run = deploy if args.command == "deploy" else integration
    run(args.env, args.expid, [m for m in args.modules.split(",") if m])


if __name__ == "__main__":
    main()
