"""The deploy roles, one per module (and one for common), each able to deploy its own module
and nothing else: the operator's standing worry was one CI/CD role that deploys everything.

Each role
- is trusted only from this repository's deploy workflow running in the GitHub environment
  ``{env}-{module}`` (OIDC: audience ``sts.amazonaws.com``, subject
  ``repo:{repository}:environment:{env}-{module}``);
- may change only its module's CloudFormation stacks (``{Env}*{Module}Stack``: its own and its
  experiments') and resources named by the rule ``{env}-{module}-*`` or
  ``{env}-exp*-{module}-*`` (log groups ``/mapdiff/...`` the same way);
- may create roles only with the permissions boundary :data:`BOUNDARY` of its module attached,
  so that what it creates cannot do more than the module may;
- reads the common parameters ``/{env}/common/*``; only the common role writes them.

The actions that AWS grants only on ``*`` (ec2's network calls of the common stack, Batch's
describe calls, ECR's login) are the only wildcard resources, each listed in
:data:`STAR_ONLY`.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from deployments.cdk.config import MODULES, Settings
from deployments.cdk.naming import pascal

GITHUB_OIDC = "token.actions.githubusercontent.com"
#: the actions AWS authorizes only on "*"
STAR_ONLY = {
    "batch": ["batch:DescribeComputeEnvironments", "batch:DescribeJobQueues", "batch:DescribeJobDefinitions"],
    "ecr": ["ecr:GetAuthorizationToken"],
    "ec2": ["ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeRouteTables",
            "ec2:DescribeInternetGateways", "ec2:DescribeNatGateways", "ec2:DescribeAddresses",
            "ec2:DescribeAvailabilityZones", "ec2:DescribeNetworkInterfaces"],
    "cloudformation": ["cloudformation:ValidateTemplate", "cloudformation:GetTemplateSummary"],
}
STACK_ACTIONS = ["cloudformation:CreateStack", "cloudformation:UpdateStack", "cloudformation:DeleteStack",
                 "cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents",
                 "cloudformation:DescribeStackResources", "cloudformation:GetTemplate",
                 "cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet",
                 "cloudformation:ExecuteChangeSet", "cloudformation:DeleteChangeSet"]
ROLE_ACTIONS = ["iam:GetRole", "iam:DeleteRole", "iam:TagRole", "iam:UntagRole", "iam:PutRolePolicy",
                "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
                "iam:PassRole", "iam:UpdateAssumeRolePolicy"]
#: what a module's stack creates, as (service actions, ARN resource pattern with {name})
MODULE_RESOURCES = [
    (["batch:CreateComputeEnvironment", "batch:UpdateComputeEnvironment", "batch:DeleteComputeEnvironment"],
     "arn:aws:batch:{region}:{account}:compute-environment/{name}"),
    (["batch:CreateJobQueue", "batch:UpdateJobQueue", "batch:DeleteJobQueue"],
     "arn:aws:batch:{region}:{account}:job-queue/{name}"),
    (["batch:RegisterJobDefinition", "batch:DeregisterJobDefinition"],
     "arn:aws:batch:{region}:{account}:job-definition/{name}"),
    (["states:CreateStateMachine", "states:UpdateStateMachine", "states:DeleteStateMachine",
      "states:DescribeStateMachine", "states:TagResource"],
     "arn:aws:states:{region}:{account}:stateMachine:{name}"),
    (["logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:TagResource"],
     "arn:aws:logs:{region}:{account}:log-group:/mapdiff/{name}"),
]
COMMON_RESOURCES = [
    (["s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
      "s3:PutEncryptionConfiguration", "s3:PutBucketPublicAccessBlock", "s3:PutBucketVersioning",
      "s3:PutBucketTagging", "s3:GetBucketLocation"],
     "arn:aws:s3:::{name}"),
    (["sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes", "sqs:GetQueueAttributes", "sqs:TagQueue"],
     "arn:aws:sqs:{region}:{account}:{name}"),
    (["rds:CreateDBCluster", "rds:ModifyDBCluster", "rds:DeleteDBCluster", "rds:DescribeDBClusters",
      "rds:CreateDBInstance", "rds:DeleteDBInstance", "rds:DescribeDBInstances", "rds:AddTagsToResource",
      "rds:CreateDBSubnetGroup", "rds:DeleteDBSubnetGroup"],
     "arn:aws:rds:{region}:{account}:*:{name}"),
    (["secretsmanager:CreateSecret", "secretsmanager:DeleteSecret", "secretsmanager:TagResource",
      "secretsmanager:PutSecretValue", "secretsmanager:DescribeSecret"],
     "arn:aws:secretsmanager:{region}:{account}:secret:{name}"),
    (["ecr:CreateRepository", "ecr:DeleteRepository", "ecr:PutImageScanningConfiguration", "ecr:TagResource",
      "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage",
      "ecr:BatchCheckLayerAvailability"],
     "arn:aws:ecr:{region}:{account}:repository/{name}"),
]


def boundary_name(settings: Settings, module: str) -> str:
    return f"{settings.env}-{module}-boundary"


class DeployRole(Construct):
    """One module's deploy role and the permissions boundary of the roles it creates."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, module: str, repository: str,
                 provider_arn: str):
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        env = settings.env
        names = [f"{env}-{module}-*", f"{env}-exp*-{module}-*"]

        def arns(pattern: str) -> list[str]:
            return [pattern.format(region=stack.region, account=stack.account, name=n) for n in names]

        # what the module's own roles (its jobs', its state machine's) may do at most
        job_actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:GetBucketLocation",
                       "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "kms:Decrypt",
                       "logs:CreateLogStream", "logs:PutLogEvents", "batch:SubmitJob", "batch:DescribeJobs",
                       "batch:TerminateJob", "events:PutTargets", "events:PutRule", "events:DescribeRule",
                       "sqs:SendMessage", "ecr:GetAuthorizationToken", "ecr:BatchGetImage",
                       "ecr:GetDownloadUrlForLayer"]
        self.boundary = iam.ManagedPolicy(
            self, "Boundary", managed_policy_name=boundary_name(settings, module),
            description=f"The most a role created by the {env} {module} deploy role may do",
            statements=[iam.PolicyStatement(actions=job_actions, resources=["*"])])
        subject = f"repo:{repository}:environment:{env}-{module}"
        self.role = iam.Role(
            self, "Role", role_name=f"{env}-{module}-deploy", max_session_duration=cdk.Duration.hours(1),
            description=f"Deploys the {module} module into {env} (GitHub environment {env}-{module})",
            assumed_by=iam.WebIdentityPrincipal(provider_arn, conditions={
                "StringEquals": {f"{GITHUB_OIDC}:aud": "sts.amazonaws.com", f"{GITHUB_OIDC}:sub": subject}}))
        stacks = [f"arn:aws:cloudformation:{stack.region}:{stack.account}:stack/{pascal(env)}*{pascal(module)}Stack/*"]
        statements = [
            iam.PolicyStatement(sid="OwnStacks", actions=STACK_ACTIONS, resources=stacks),
            iam.PolicyStatement(sid="CreateRolesWithTheBoundary", actions=["iam:CreateRole",
                                                                             "iam:PutRolePermissionsBoundary"],
                                resources=arns("arn:aws:iam::{account}:role/{name}"),
                                conditions={"StringEquals": {
                                    "iam:PermissionsBoundary": self.boundary.managed_policy_arn}}),
            iam.PolicyStatement(sid="OwnRoles", actions=ROLE_ACTIONS,
                                resources=arns("arn:aws:iam::{account}:role/{name}")),
            iam.PolicyStatement(sid="ReadCommonParameters", actions=["ssm:GetParameter", "ssm:GetParameters"],
                                resources=[f"arn:aws:ssm:{stack.region}:{stack.account}:parameter/{env}/common/*"]),
        ]
        for i, (actions, pattern) in enumerate(COMMON_RESOURCES if module == "common" else MODULE_RESOURCES):
            statements.append(iam.PolicyStatement(sid=f"Own{i}", actions=actions, resources=arns(pattern)))
        if module == "common":
            statements.append(iam.PolicyStatement(
                sid="WriteCommonParameters", actions=["ssm:PutParameter", "ssm:DeleteParameter",
                                                      "ssm:AddTagsToResource"],
                resources=[f"arn:aws:ssm:{stack.region}:{stack.account}:parameter/{env}/common/*"]))
        for service, actions in STAR_ONLY.items():
            if service == "ec2" and module != "common":
                continue
            statements.append(iam.PolicyStatement(sid=f"StarOnly{pascal(service)}", actions=actions, resources=["*"]))
        iam.Policy(self, "Policy", policy_name=f"{env}-{module}-deploy", statements=statements, roles=[self.role])


class CiRolesStack(cdk.Stack):
    """The GitHub OIDC provider and a deploy role per module (and one for common) of one
    environment."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, repository: str, **kwargs):
        super().__init__(scope, construct_id, **kwargs)
        # (the L1 resource: the L2 construct needs a custom resource, an asset, and a bootstrap stack)
        provider = iam.CfnOIDCProvider(self, "GithubOidc", url=f"https://{GITHUB_OIDC}",
                                       client_id_list=["sts.amazonaws.com"])
        self.roles = {module: DeployRole(self, f"{pascal(module)}Deploy", settings=settings, module=module,
                                         repository=repository, provider_arn=provider.attr_arn)
                      for module in ("common", *MODULES)}
