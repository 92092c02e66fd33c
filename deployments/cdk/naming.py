"""The naming rule every resource follows, so that modules find each other by name (weak
references) and a deploy role can be scoped to a module's own resources:

- resources ``{env}-{module}-{resource}`` (``qa-exp1-travel-match`` in an experiment);
- construct ids the PascalCase of the resource part (``MatchJob``);
- stacks ``{Env}{Module}Stack`` (``QaTravelStack``, ``QaExp1TravelStack``);
- the common resources' SSM parameters ``/{env}/common/{name}`` (an experiment reads its
  environment's).
"""

from __future__ import annotations

from deployments.cdk.config import Settings


def pascal(text: str) -> str:
    """``data-bucket`` -> ``DataBucket``."""
    return "".join(part[:1].upper() + part[1:] for part in text.replace("_", "-").split("-") if part)


def resource(settings: Settings, module: str, name: str) -> str:
    """A resource's physical name: ``{prefix}-{module}-{name}``."""
    prefix = settings.env if module == "common" else settings.prefix
    return f"{prefix}-{module}-{name}"


def stack_name(settings: Settings, module: str) -> str:
    """``QaTravelStack``, ``QaExp1TravelStack``, ``QaCommonStack``."""
    expid = settings.expid if module != "common" else None
    return f"{pascal(settings.env)}{expid or ''}{pascal(module)}Stack"


def parameter(settings: Settings, name: str) -> str:
    """The SSM parameter through which the common stack publishes ``name``."""
    return f"/{settings.env}/common/{name}"


#: what the common stack publishes: SSM name -> what it holds
PUBLISHED = {
    "data-bucket": "the data bucket's name",
    "db-secret-arn": "the ARN of the database credentials' secret",
    "db-endpoint": "the database cluster's writer endpoint",
    "task-queue-arn": "the ARN of the task events queue",
    "vpc-id": "the VPC's id",
    "private-subnet-ids": "the private subnets' ids, comma-separated",
    "availability-zones": "the subnets' availability zones, comma-separated",
    "batch-security-group-id": "the security group of the Batch jobs (the database lets it in)",
    "image-repository": "the container image repository's name",
}
