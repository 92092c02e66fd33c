"""The CDK app (deployments/cdk), synthesized offline and checked with aws_cdk.assertions:
names per environment and experiment, the job definitions, array jobs and retries, IAM without
wildcards, no cross-stack references, and the SSM parameters the modules read being those the
common stack writes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("aws_cdk", reason="the CDK app's tests need aws-cdk-lib (the test extras)")
if shutil.which("node") is None:
    pytest.skip("the CDK app's tests need Node.js (jsii)", allow_module_level=True)
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402

from deployments.cdk.app import build  # noqa: E402
from deployments.cdk.config import MERGED, MODULES, SHARDED, SettingsError, StageSettings, settings  # noqa: E402

from .conftest import ROOT  # noqa: E402


def _templates(env, expid=None):
    app = cdk.App()
    stacks = build(app, settings(env, expid))
    return {module: Template.from_stack(stack) for module, stack in stacks.items()}, stacks


@pytest.fixture(scope="module")
def qa():
    return _templates("qa")


@pytest.fixture(scope="module")
def exp1():
    return _templates("qa", "Exp1")


def _resources(template, kind):
    return template.find_resources(kind)


def test_names_per_environment(qa):
    templates, stacks = qa
    assert {m: s.stack_name for m, s in stacks.items()} == {
        "common": "QaCommonStack", "travel": "QaTravelStack", "video": "QaVideoStack",
        "recognition": "QaRecognitionStack", "judgment": "QaJudgmentStack"}
    templates["common"].has_resource_properties("AWS::S3::Bucket", {"BucketName": "qa-common-data-bucket"})
    templates["common"].has_resource_properties("AWS::RDS::DBCluster", {"DBClusterIdentifier": "qa-common-db",
                                                                        "Engine": "aurora-postgresql"})
    templates["common"].has_resource_properties("AWS::SSM::Parameter", {"Name": "/qa/common/data-bucket"})
    for module, stages in MODULES.items():
        names = {r["Properties"]["JobDefinitionName"] for r in _resources(templates[module],
                                                                          "AWS::Batch::JobDefinition").values()}
        assert names == ({f"qa-{module}-{s}" for s in stages} | ({f"qa-{module}-merge"}
                                                                 if set(stages) & set(SHARDED) else set())
                         | ({"qa-video-migrate"} if module == "video" else set()))
        templates[module].has_resource_properties("AWS::Batch::JobQueue", {"JobQueueName": f"qa-{module}-queue"})
        templates[module].has_resource_properties("AWS::StepFunctions::StateMachine",
                                                   {"StateMachineName": f"qa-{module}-pipeline"})


def test_an_experiment_lives_beside_its_environment(exp1):
    templates, stacks = exp1
    assert "common" not in stacks  # it uses qa's common resources
    assert stacks["travel"].stack_name == "QaExp1TravelStack"
    templates["travel"].has_resource_properties("AWS::Batch::JobDefinition",
                                                {"JobDefinitionName": "qa-exp1-travel-match"})
    defaults = {p["Default"] for p in templates["travel"].find_parameters("*").values() if "Default" in p}
    assert "/qa/common/data-bucket" in defaults
    everything = json.dumps([t.to_json() for t in templates.values()])
    assert '"qa-travel-' not in everything and '"qa-judgment-' not in everything  # never touches qa's own


def test_every_job_runs_mapdiff_job_with_its_size_and_retries_only_transient_exits(qa):
    templates, _ = qa
    s = settings("qa")
    for template in templates.values():
        for job in _resources(template, "AWS::Batch::JobDefinition").values():
            props = job["Properties"]
            stage = props["JobDefinitionName"].rsplit("-", 1)[1]
            container = props["ContainerProperties"]
            assert container["Command"] == ["mapdiff", "job", *({"migrate": ["tasks", "migrate"]}.get(stage, [stage]))]
            env = {e["Name"]: e["Value"] for e in container["Environment"]}
            size = s.stages[stage].array_size if stage in s.stages else 1
            assert env["AWS_BATCH_JOB_ARRAY_SIZE"] == str(size)
            assert env["MAPDIFF_ENV"] == "qa"
            retry = props["RetryStrategy"]
            assert retry["Attempts"] == (s.stages[stage].attempts if stage in s.stages else 3)
            assert retry["EvaluateOnExit"][0] == {"Action": "RETRY", "OnExitCode": "75"}
            assert retry["EvaluateOnExit"][-1] == {"Action": "EXIT", "OnExitCode": "*"}
            assert props["PlatformCapabilities"] == ["FARGATE"]


def test_sharded_stages_run_as_array_jobs_and_are_merged(qa):
    templates, _ = qa
    s = settings("qa")
    for module, stages in MODULES.items():
        machine = next(iter(_resources(templates[module], "AWS::StepFunctions::StateMachine").values()))
        definition = json.dumps(machine["Properties"]["DefinitionString"])
        for stage in stages:
            if stage in SHARDED:
                assert f'\\"ArrayProperties\\":{{\\"Size\\":{s.stages[stage].array_size}}}' in definition
                for out in MERGED[stage]:
                    assert f"qa-{module}-{stage}-merge-{out}" in definition
            assert f'\\"MAPDIFF_ARGS\\",\\"Value.$\\":\\"$.args.{stage}\\"' in definition


#: the actions AWS grants only on "*" (no resource-level permissions)
STAR_RESOURCE_ACTIONS = {"ecr:GetAuthorizationToken", "batch:SubmitJob", "batch:DescribeJobs",
                         "batch:TerminateJob", "events:PutTargets", "events:PutRule", "events:DescribeRule"}


def test_iam_has_no_wildcard_action_and_no_wildcard_resource_but_where_aws_requires_it(qa, exp1):
    for templates in (qa[0], exp1[0]):
        for template in templates.values():
            for policy in _resources(template, "AWS::IAM::Policy").values():
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    assert not [a for a in actions if a == "*" or a.endswith(":*")], statement
                    if statement["Resource"] == "*":
                        assert set(actions) <= STAR_RESOURCE_ACTIONS, statement


def test_modules_never_reference_another_stack(qa):
    templates, _ = qa
    for template in templates.values():
        text = json.dumps(template.to_json())
        assert "Fn::ImportValue" not in text
        assert not [o for o in template.to_json().get("Outputs", {}).values() if "Export" in o]


def test_the_parameters_modules_read_are_the_ones_common_writes(qa):
    templates, _ = qa
    written = {r["Properties"]["Name"] for r in _resources(templates["common"], "AWS::SSM::Parameter").values()}
    for module in MODULES:
        read = {p["Default"] for p in templates[module].find_parameters(
            "*", {"Type": "AWS::SSM::Parameter::Value<String>"}).values()}
        assert read and read <= written, (module, read - written)


def test_only_the_video_module_sends_task_events(qa):
    templates, _ = qa
    for module, template in templates.items():
        if module == "common":
            continue
        sends = Match.object_like({"Action": Match.array_with(["sqs:SendMessage"])})
        found = template.find_resources("AWS::IAM::Policy", {"Properties": {"PolicyDocument": {
            "Statement": Match.array_with([sends])}}})
        assert bool(found) == (module == "video"), module


@pytest.mark.parametrize("env, expid, words", [
    ("staging", None, "env must be one of dev, qa, prod"),
    (None, None, "env must be one of dev, qa, prod"),
    ("qa", "exp1", "expid must be Exp followed by 1 to 999"),
    ("qa", "Exp0", "expid must be Exp followed by 1 to 999"),
])
def test_an_unknown_env_or_a_malformed_expid_names_the_allowed_values(env, expid, words):
    with pytest.raises(SettingsError, match=words):
        settings(env, expid)


@pytest.mark.parametrize("stage, stage_settings, words", [
    ("match", StageSettings(vcpus=3.0), "vcpus must be one of"),
    ("match", StageSettings(vcpus=1.0, memory_mib=16384), r"memory_mib must be in \[2048, 8192\]"),
    ("plan", StageSettings(array_size=4), "array_size must be 1"),
    ("locate", StageSettings(attempts=0), "attempts must be in"),
])
def test_stage_settings_are_checked(stage, stage_settings, words):
    with pytest.raises(SettingsError, match=words):
        stage_settings.check(stage)


def test_cdk_synth_with_a_bad_env_is_one_line(tmp_path):
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"env": "staging"}), "CDK_OUTDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(ROOT / "deployments" / "cdk" / "app.py")], env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == ("deployments: error: env must be one of dev, qa, prod "
                                                      "(cdk synth -c env=qa); found 'staging'")


@pytest.fixture()
def moto_server():
    """moto in server mode on a free port; yields the client arguments to reach it."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "eu-west-1", "aws_access_key_id": "testing",
           "aws_secret_access_key": "testing"}
    server.stop()


def _create(cf, name, template):
    import time

    cf.create_stack(StackName=name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_NAMED_IAM"])
    for _ in range(120):
        stack = cf.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            return stack
        time.sleep(0.25)
    return stack


def test_the_stacks_create_in_moto_and_the_modules_find_common_through_ssm(qa, exp1, moto_server):
    import boto3

    from fixtures.moto_cfn import MOTO_CANNOT, deployable

    cf = boto3.client("cloudformation", **moto_server)
    region = moto_server["region_name"]
    dropped = set()
    for templates, stacks in (qa, exp1):
        for module, stack in stacks.items():
            template, gone = deployable(templates[module].to_json(), region)
            dropped |= gone
            created = _create(cf, stack.stack_name, template)
            assert created["StackStatus"] == "CREATE_COMPLETE", (stack.stack_name, created.get("StackStatusReason"))
    # what moto could not create, said (the README lists it)
    assert dropped == {"AWS::RDS::DBCluster", "AWS::SecretsManager::Secret",
                       "AWS::SecretsManager::SecretTargetAttachment", "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy",
                       *MOTO_CANNOT}
    ssm = boto3.client("ssm", **moto_server)
    assert ssm.get_parameter(Name="/qa/common/data-bucket")["Parameter"]["Value"] == "qa-common-data-bucket"
    batch = boto3.client("batch", **moto_server)
    names = {d["jobDefinitionName"] for d in batch.describe_job_definitions()["jobDefinitions"]}
    assert {"qa-travel-match", "qa-travel-merge", "qa-judgment-report", "qa-exp1-travel-match"} <= names
    machines = {m["name"] for m in boto3.client("stepfunctions", **moto_server).list_state_machines()["stateMachines"]}
    assert {"qa-travel-pipeline", "qa-exp1-judgment-pipeline"} <= machines
    # the lookups are real: without the parameter the module cannot be created (moto 5.2 answers
    # with a server error where AWS names the parameter), with it again it can
    cf.delete_stack(StackName="QaTravelStack")
    repository = ssm.get_parameter(Name="/qa/common/image-repository")["Parameter"]["Value"]
    ssm.delete_parameter(Name="/qa/common/image-repository")
    template, _ = deployable(qa[0]["travel"].to_json(), region)
    with pytest.raises(Exception):  # noqa: B017
        _create(cf, "QaTravelStackAgain", template)
    ssm.put_parameter(Name="/qa/common/image-repository", Value=repository, Type="String")
    assert _create(cf, "QaTravelStackOnceMore", template)["StackStatus"] == "CREATE_COMPLETE"


def _deploy(*args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update({"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                  "AWS_EC2_METADATA_DISABLED": "true", **env})
    return subprocess.run([sys.executable, str(ROOT / "deployments" / "deploy.py"), *args], env=clean,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("args, words", [
    (["deploy", "--env", "qa"], "no usable AWS credentials"),
    (["deploy", "--env", "qa", "--expid", "Exp1", "--modules", "travel"], "nothing was deployed"),
    (["deploy", "--env", "staging"], "env must be one of dev, qa, prod"),
    (["deploy", "--env", "qa", "--modules", "travel,photos"], "--modules must be among common, travel, video"),
    (["synth", "--env", "qa", "--expid", "exp1"], "expid must be Exp followed by 1 to 999"),
])
def test_make_deploy_refusals_are_one_line(args, words):
    result = _deploy(*args)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("deployments: error: ") and words in last, result.stderr


@pytest.fixture(scope="module")
def ci_roles():
    from deployments.cdk.ci_roles import CiRolesStack

    app = cdk.App()
    stack = CiRolesStack(app, "QaCiRolesStack", settings=settings("qa"), repository="fleet/mapdiff",
                         env=cdk.Environment(account="123456789012", region="eu-west-1"),
                         synthesizer=cdk.BootstraplessSynthesizer())
    return Template.from_stack(stack).to_json()


def _deploy_statements(template, module):
    policy = next(r for r in template["Resources"].values()
                  if r["Type"] == "AWS::IAM::Policy" and r["Properties"]["PolicyName"] == f"qa-{module}-deploy")
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_the_travel_role_cannot_touch_a_judgment_resource_or_create_an_unbounded_role(ci_roles):
    from deployments.cdk.ci_roles import STAR_ONLY

    star_only = {a for actions in STAR_ONLY.values() for a in actions}
    for statement in _deploy_statements(ci_roles, "travel"):
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not [a for a in actions if a == "*" or a.endswith(":*")]
        text = json.dumps(resources)
        assert "judgment" not in text.lower() and "common" not in text.replace("/qa/common/", "")
        if resources == ["*"]:
            assert set(actions) <= star_only, statement
        else:
            assert all("travel" in json.dumps(r).lower() or "/qa/common/" in json.dumps(r) for r in resources)
        if "iam:CreateRole" in actions:
            assert statement["Condition"]["StringEquals"]["iam:PermissionsBoundary"] == {
                "Ref": next(k for k, r in ci_roles["Resources"].items() if r["Type"] == "AWS::IAM::ManagedPolicy"
                            and r["Properties"]["ManagedPolicyName"] == "qa-travel-boundary")}
    created = [s for s in _deploy_statements(ci_roles, "travel") if "iam:CreateRole" in json.dumps(s["Action"])]
    assert len(created) == 1 and "Condition" in created[0]


def test_each_deploy_role_is_trusted_only_from_its_modules_github_environment(ci_roles):
    roles = {r["Properties"]["RoleName"]: r for r in ci_roles["Resources"].values() if r["Type"] == "AWS::IAM::Role"}
    assert set(roles) == {f"qa-{m}-deploy" for m in ("common", *MODULES)}
    for name, role in roles.items():
        module = name.split("-")[1]
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Condition"]["StringEquals"] == {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": f"repo:fleet/mapdiff:environment:qa-{module}"}


def test_every_role_a_module_creates_is_named_by_the_rule_and_carries_its_boundary(qa, exp1):
    import re

    for templates, prefix in ((qa[0], "qa"), (exp1[0], "qa-exp1")):
        for module in MODULES:
            roles = _resources(templates[module], "AWS::IAM::Role").values()
            assert roles
            for role in roles:
                props = role["Properties"]
                assert re.fullmatch(f"{prefix}-{module}-[a-z0-9-]+", props["RoleName"]), props["RoleName"]
                assert json.dumps(props["PermissionsBoundary"]).count(f"policy/qa-{module}-boundary") == 1


def test_the_deploy_workflow_passes_actionlint_and_uses_each_modules_role_and_environment():
    import yaml

    workflow = ROOT / ".github" / "workflows" / "deploy.yml"
    actionlint = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    result = subprocess.run([actionlint, str(workflow)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    for env in ("qa", "prod"):
        job = jobs[env]
        assert job["environment"] == f"{env}-${{{{ matrix.module }}}}"  # the trust condition's subject
        role = next(s["with"]["role-to-assume"] for s in job["steps"]
                    if "configure-aws-credentials" in s.get("uses", ""))
        assert role.endswith(f":role/{env}-${{{{ matrix.module }}}}-deploy")
        runs = [s["run"] for s in job["steps"] if "run" in s]
        module = "${{ matrix.module }}"
        assert runs[:2] == [f"make build PROJ_ENV={env}", f"make deploy PROJ_ENV={env} MODULES={module}"]
    assert jobs["prod"]["needs"] == ["modules", "qa"]
    assert "make integration PROJ_ENV=qa MODULES=${{ matrix.module }}" in [s.get("run") for s in jobs["qa"]["steps"]]
