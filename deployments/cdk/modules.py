"""One stack per pipeline module (travel, video, recognition, judgment), built from constructs:
the common resources found through their SSM parameters (:class:`CommonRefs`), a Batch compute
environment and job queue (:class:`JobQueue`), one job definition per stage running
``mapdiff job STAGE`` (:class:`StageJob`), and a state machine chaining the module's stages,
each sharded stage followed by the merge of its parts (:class:`Pipeline`)."""

from __future__ import annotations

from functools import cached_property

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from deployments.cdk.config import EXIT_TRANSIENT, MERGED, MODULES, SHARDED, Settings, StageSettings
from deployments.cdk.naming import parameter, pascal, resource

#: the modules whose jobs write tasks (the task store) and task events
TASK_MODULES = ("video",)
#: the module that owns the database's schema: its "migrate" job runs the migrations (PostGIS
#: included) on every deploy (deployments/deploy.py)
MIGRATING_MODULE = "video"
#: jobs whose mapdiff command is not their name
JOB_COMMANDS = {"migrate": ("tasks", "migrate")}


class CommonRefs(Construct):
    """The common stack's resources, found through the SSM parameters it publishes (resolved
    when the module stack deploys): never a cross-stack reference. Each is looked up when first
    used, so a module's template reads only the parameters it needs."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings):
        super().__init__(scope, construct_id)
        self.settings = settings

    def value(self, name: str) -> str:
        """The value of the common parameter ``name`` (an SSM-typed stack parameter)."""
        return ssm.StringParameter.value_for_string_parameter(self, parameter(self.settings, name))

    @cached_property
    def bucket(self) -> s3.IBucket:
        return s3.Bucket.from_bucket_name(self, "DataBucket", self.value("data-bucket"))

    @cached_property
    def secret(self) -> secretsmanager.ISecret:
        return secretsmanager.Secret.from_secret_complete_arn(self, "DbSecret", self.value("db-secret-arn"))

    @cached_property
    def queue(self) -> sqs.IQueue:
        return sqs.Queue.from_queue_arn(self, "TaskEvents", self.value("task-queue-arn"))

    @cached_property
    def repository(self) -> ecr.IRepository:
        return ecr.Repository.from_repository_name(self, "Image", self.value("image-repository"))

    @cached_property
    def db_endpoint(self) -> str:
        return self.value("db-endpoint")

    @cached_property
    def vpc(self) -> ec2.IVpc:
        n = self.settings.max_azs
        return ec2.Vpc.from_vpc_attributes(
            self, "Vpc", vpc_id=self.value("vpc-id"),
            availability_zones=cdk.Fn.split(",", self.value("availability-zones"), n),
            private_subnet_ids=cdk.Fn.split(",", self.value("private-subnet-ids"), n))

    @cached_property
    def security_group(self) -> ec2.ISecurityGroup:
        return ec2.SecurityGroup.from_security_group_id(
            self, "BatchSecurityGroup", self.value("batch-security-group-id"), mutable=False)


class JobQueue(Construct):
    """The module's Fargate compute environment and its job queue."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, module: str, common: CommonRefs):
        super().__init__(scope, construct_id)
        self.environment = batch.FargateComputeEnvironment(
            self, "ComputeEnvironment", compute_environment_name=resource(settings, module, "compute"),
            vpc=common.vpc, vpc_subnets=ec2.SubnetSelection(subnets=common.vpc.private_subnets),
            security_groups=[common.security_group], maxv_cpus=settings.max_vcpus)
        self.queue = batch.JobQueue(self, "Queue", job_queue_name=resource(settings, module, "queue"),
                                    compute_environments=[batch.OrderedComputeEnvironment(
                                        compute_environment=self.environment, order=1)])


class StageJob(Construct):
    """A stage's job definition: the image running ``mapdiff job STAGE`` with the stage's
    arguments from ``$MAPDIFF_ARGS`` (set per run by the state machine), its vCPUs and memory,
    and a retry strategy that retries the transient exit (75) and a lost host, nothing else. Its
    role may read and write the data bucket and read the database secret; a task module's also
    sends task events."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, module: str, stage: str,
                 stage_settings: StageSettings, common: CommonRefs, logs_group: logs.ILogGroup):
        super().__init__(scope, construct_id)
        name = resource(settings, module, stage)
        self.role = iam.Role(self, "Role", role_name=f"{name}-job",
                             assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                             description=f"The {stage} jobs of {settings.prefix}'s {module} module")
        common.bucket.grant_read_write(self.role)
        common.secret.grant_read(self.role)
        if module in TASK_MODULES:
            common.queue.grant_send_messages(self.role)
        environment = {
            "MAPDIFF_ENV": settings.prefix,
            # Batch sets the index; the size of the array is the job definition's to tell
            "AWS_BATCH_JOB_ARRAY_SIZE": str(stage_settings.array_size),
            "MAPDIFF_DB_HOST": common.db_endpoint,
            "MAPDIFF_RUN_PREFIX": f"s3://{common.bucket.bucket_name}/runs/{settings.prefix}",
        }
        # the role that pulls the image, writes the logs and reads the secret (named by the rule, so
        # that the module's deploy role may create it)
        execution_role = iam.Role(self, "ExecutionRole", role_name=f"{name}-exec",
                                  assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
        container = batch.EcsFargateContainerDefinition(
            self, "Container",
            image=ecs.ContainerImage.from_ecr_repository(common.repository, settings.image_tag),
            cpu=stage_settings.vcpus, memory=cdk.Size.mebibytes(stage_settings.memory_mib),
            command=["mapdiff", "job", *JOB_COMMANDS.get(stage, (stage,))], environment=environment,
            job_role=self.role,
            execution_role=execution_role,
            secrets={"MAPDIFF_DB_SECRET": batch.Secret.from_secrets_manager(common.secret)},
            logging=ecs.LogDriver.aws_logs(stream_prefix=name, log_group=logs_group),
            readonly_root_filesystem=False)
        self.definition = batch.EcsJobDefinition(
            self, "Definition", job_definition_name=name, container=container,
            retry_attempts=stage_settings.attempts,
            retry_strategies=[
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom(on_exit_code=str(EXIT_TRANSIENT))),
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom(on_status_reason="Host EC2*")),
                batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_exit_code="*")),
            ],
            timeout=cdk.Duration.seconds(stage_settings.timeout_s), propagate_tags=True)


class Pipeline(Construct):
    """The module's state machine: its stages in order, a sharded stage as an array job followed
    by a merge of the parts of each of its outputs. The run's input carries each job's arguments:
    ``{"args": {"match": "...", "match-merge-match": "...", "match-merge-paths": "...", ...}}``
    (deployments/integration/ has one per module)."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, module: str,
                 jobs: dict[str, StageJob], queue: batch.JobQueue):
        super().__init__(scope, construct_id)
        chain = None
        for stage in MODULES[module]:
            steps = [(stage, stage, settings.stages[stage].array_size)]
            steps += [(f"{stage}-merge-{out}", "merge", 1) for out in MERGED.get(stage, ())]
            for step, job, size in steps:
                task = tasks.BatchSubmitJob(
                    self, pascal(step), job_name=resource(settings, module, step),
                    job_definition_arn=jobs[job].definition.job_definition_arn, job_queue_arn=queue.job_queue_arn,
                    array_size=size if size > 1 else None,
                    container_overrides=tasks.BatchContainerOverrides(
                        environment={"MAPDIFF_ARGS": sfn.JsonPath.string_at(f"$.args.{step}")}),
                    result_path=sfn.JsonPath.DISCARD)
                chain = task if chain is None else chain.next(task)
        role = iam.Role(self, "Role", role_name=resource(settings, module, "pipeline"),
                        assumed_by=iam.ServicePrincipal("states.amazonaws.com"))
        self.state_machine = sfn.StateMachine(
            self, "StateMachine", state_machine_name=resource(settings, module, "pipeline"), role=role,
            definition_body=sfn.DefinitionBody.from_chainable(chain), timeout=cdk.Duration.hours(24))


class ModuleStack(cdk.Stack):
    """A module: its job queue, a job per stage (and one to merge parts), its pipeline."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, module: str, **kwargs):
        super().__init__(scope, construct_id, **kwargs)
        # every role the stack creates carries the module's boundary (deployments/cdk/ci_roles.py):
        # the module's deploy role may create roles only with it
        boundary = iam.ManagedPolicy.from_managed_policy_name(self, "Boundary", f"{settings.env}-{module}-boundary")
        iam.PermissionsBoundary.of(self).apply(boundary)
        common = CommonRefs(self, "Common", settings=settings)
        queue = JobQueue(self, "Batch", settings=settings, module=module, common=common)
        log_group = logs.LogGroup(self, "Logs", log_group_name=f"/mapdiff/{resource(settings, module, 'jobs')}",
                                  retention=_retention(settings.log_retention_days),
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        stages = list(MODULES[module])
        if any(s in SHARDED for s in stages):
            stages.append("merge")
        if module == MIGRATING_MODULE:
            stages.append("migrate")
        merge_settings = StageSettings(vcpus=2.0, memory_mib=8192)
        self.jobs = {
            stage: StageJob(self, f"{pascal(stage)}Job", settings=settings, module=module, stage=stage,
                            stage_settings=settings.stages.get(stage, merge_settings), common=common,
                            logs_group=log_group)
            for stage in stages
        }
        self.pipeline = Pipeline(self, "Pipeline", settings=settings, module=module, jobs=self.jobs,
                                 queue=queue.queue)


def _retention(days: int) -> logs.RetentionDays:
    for value in logs.RetentionDays:
        if value.name.startswith("ONE_") and days == 1 or value.value == days:
            return value
    return logs.RetentionDays.ONE_MONTH
