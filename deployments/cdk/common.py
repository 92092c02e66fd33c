"""The common stack: network, database, data bucket, task events queue, image repository; it
publishes what the modules need as SSM parameters (``/{env}/common/...``) and nothing else: the
modules never reference it across stacks."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from deployments.cdk.config import Settings
from deployments.cdk.naming import PUBLISHED, parameter, resource


class CommonStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, **kwargs):
        super().__init__(scope, construct_id, **kwargs)
        s = settings
        keep = cdk.RemovalPolicy.RETAIN if s.env == "prod" else cdk.RemovalPolicy.DESTROY

        self.vpc = ec2.Vpc(self, "Vpc", vpc_name=resource(s, "common", "vpc"), max_azs=s.max_azs, nat_gateways=1,
                           subnet_configuration=[
                               ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                               ec2.SubnetConfiguration(name="private",
                                                       subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)])
        jobs_sg = ec2.SecurityGroup(self, "BatchSecurityGroup", vpc=self.vpc,
                                    security_group_name=resource(s, "common", "batch-sg"),
                                    description="AWS Batch jobs of every module")
        db_sg = ec2.SecurityGroup(self, "DbSecurityGroup", vpc=self.vpc,
                                  security_group_name=resource(s, "common", "db-sg"),
                                  description="The Aurora cluster: PostgreSQL from the Batch jobs only")
        db_sg.add_ingress_rule(jobs_sg, ec2.Port.tcp(5432), "PostgreSQL from the Batch jobs")

        self.db = rds.DatabaseCluster(
            self, "Db", cluster_identifier=resource(s, "common", "db"),
            engine=rds.DatabaseClusterEngine.aurora_postgres(version=rds.AuroraPostgresEngineVersion.VER_16_9),
            writer=rds.ClusterInstance.serverless_v2("Writer"),
            serverless_v2_min_capacity=s.db_min_acu, serverless_v2_max_capacity=s.db_max_acu,
            credentials=rds.Credentials.from_generated_secret("mapdiff",
                                                              secret_name=resource(s, "common", "db-secret")),
            default_database_name="mapdiff", vpc=self.vpc, security_groups=[db_sg],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            storage_encrypted=True, deletion_protection=s.env == "prod", removal_policy=keep)

        self.bucket = s3.Bucket(self, "DataBucket", bucket_name=resource(s, "common", "data-bucket"),
                                encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
                                block_public_access=s3.BlockPublicAccess.BLOCK_ALL, versioned=s.env == "prod",
                                removal_policy=keep, auto_delete_objects=False)
        self.queue = sqs.Queue(self, "TaskEvents", queue_name=resource(s, "common", "task-events"),
                               retention_period=cdk.Duration.days(14), enforce_ssl=True)
        self.repository = ecr.Repository(self, "Image", repository_name=resource(s, "common", "image"),
                                         image_scan_on_push=True, removal_policy=keep)

        private = self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        values = {
            "data-bucket": self.bucket.bucket_name,
            "db-secret-arn": self.db.secret.secret_arn,
            "db-endpoint": self.db.cluster_endpoint.hostname,
            "task-queue-arn": self.queue.queue_arn,
            "vpc-id": self.vpc.vpc_id,
            "private-subnet-ids": cdk.Fn.join(",", private.subnet_ids),
            "availability-zones": cdk.Fn.join(",", [sn.availability_zone for sn in private.subnets]),
            "batch-security-group-id": jobs_sg.security_group_id,
            "image-repository": self.repository.repository_name,
        }
        assert set(values) == set(PUBLISHED)
        for name, value in values.items():
            ssm.StringParameter(self, f"Param{name.title().replace('-', '')}", parameter_name=parameter(s, name),
                                string_value=value, description=PUBLISHED[name])
