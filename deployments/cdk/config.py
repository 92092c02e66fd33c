"""The settings of every environment, typed and checked: what ``cdk synth -c env=... [-c
expid=...]`` builds. Settings live here, not in cdk.json context, so a typo is an error, not a
silent default.

An experiment (``expid`` such as ``Exp1``) is a set of module stacks beside an environment's own
(qa's, usually): it reads that environment's common resources and names its own
``qa-exp1-{module}-...``, so it never touches qa's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mapdiff.experiment import EXPID  # (one rule for the experiments and their stacks)

ENVS = ("dev", "qa", "prod")
#: the pipeline's modules and their stages, in the order a module's state machine runs them
MODULES = {
    "travel": ("match", "coverage"),
    "video": ("plan", "upload"),
    "recognition": ("observe", "locate"),
    "judgment": ("diff", "report"),
}
#: the stages that run as array jobs, one shard per child (``mapdiff job`` gives each its shard),
#: and the outputs whose parts a merge job joins after them (mapdiff merge STAGE)
MERGED = {"match": ("match", "paths"), "coverage": ("coverage",), "observe": ("observe",), "locate": ("locate",),
          "diff": ("diff",)}
SHARDED = tuple(MERGED)
#: what ``mapdiff job`` exits with when a retry may succeed (mapdiff.errors.EXIT_TRANSIENT)
EXIT_TRANSIENT = 75


class SettingsError(ValueError):
    """An environment, experiment id or setting that is not allowed; the message names the
    allowed values."""


@dataclass(frozen=True)
class StageSettings:
    """One stage's job: Fargate vCPUs and memory, array size (shards; 1 for an unsharded stage),
    attempts (retries of transient failures) and timeout."""

    vcpus: float = 2.0
    memory_mib: int = 4096
    array_size: int = 1
    attempts: int = 3
    timeout_s: int = 3600

    def check(self, stage: str) -> None:
        # Fargate's CPU and memory pairs (vCPU: allowed MiB)
        allowed = {0.25: (512, 2048), 0.5: (1024, 4096), 1.0: (2048, 8192), 2.0: (4096, 16384),
                   4.0: (8192, 30720), 8.0: (16384, 61440), 16.0: (32768, 122880)}
        if self.vcpus not in allowed:
            raise SettingsError(f"{stage}: vcpus must be one of {sorted(allowed)}; found {self.vcpus}")
        low, high = allowed[self.vcpus]
        if not low <= self.memory_mib <= high:
            raise SettingsError(f"{stage}: memory_mib must be in [{low}, {high}] for {self.vcpus} vCPU; "
                                f"found {self.memory_mib}")
        if self.array_size < 1 or (self.array_size > 1 and stage not in SHARDED):
            raise SettingsError(f"{stage}: array_size must be 1 (an unsharded stage) or, for {SHARDED}, "
                                f"2..10000; found {self.array_size}")
        if not 1 <= self.attempts <= 10:
            raise SettingsError(f"{stage}: attempts must be in [1, 10] (AWS Batch); found {self.attempts}")


def _stages(shards: int, heavy_mib: int) -> dict[str, StageSettings]:
    out = {}
    for stages in MODULES.values():
        for stage in stages:
            sharded = stage in SHARDED
            out[stage] = StageSettings(memory_mib=heavy_mib if sharded else 4096,
                                       array_size=shards if sharded else 1)
    return out


@dataclass(frozen=True)
class Settings:
    """An environment's settings (see :func:`settings`)."""

    env: str
    expid: str | None = None
    region: str = "eu-west-1"
    max_azs: int = 2
    db_min_acu: float = 0.5
    db_max_acu: float = 4.0
    log_retention_days: int = 30
    max_vcpus: int = 64
    image_tag: str = "latest"
    stages: dict[str, StageSettings] = field(default_factory=lambda: _stages(4, 8192))

    @property
    def prefix(self) -> str:
        """``qa``, or ``qa-exp1`` for an experiment: the first part of every resource name."""
        return f"{self.env}-{self.expid.lower()}" if self.expid else self.env

    def check(self) -> Settings:
        if not 0.5 <= self.db_min_acu <= self.db_max_acu <= 256:
            raise SettingsError(f"{self.env}: need 0.5 <= db_min_acu <= db_max_acu <= 256; found "
                                f"{self.db_min_acu}, {self.db_max_acu}")
        if set(self.stages) != {s for stages in MODULES.values() for s in stages}:
            raise SettingsError(f"{self.env}: stages must be exactly those of the modules {MODULES}")
        for stage, s in self.stages.items():
            s.check(stage)
        return self


#: the environments: dev small and cheap, qa as prod but smaller, prod sized for the fleet
ENVIRONMENTS = {
    "dev": Settings("dev", max_azs=2, db_max_acu=2.0, log_retention_days=7, max_vcpus=16,
                    stages=_stages(2, 4096)),
    "qa": Settings("qa", max_azs=2, db_max_acu=4.0, log_retention_days=30, max_vcpus=64),
    "prod": Settings("prod", max_azs=3, db_min_acu=1.0, db_max_acu=32.0, log_retention_days=365, max_vcpus=512,
                     stages=_stages(32, 16384)),
}


def settings(env: str | None, expid: str | None = None) -> Settings:
    """The settings of ``env`` (dev, qa, prod), for the experiment ``expid`` (``Exp1``..``Exp999``)
    when given; SettingsError names the allowed values otherwise."""
    if env not in ENVS:
        raise SettingsError(f"env must be one of {', '.join(ENVS)} (cdk synth -c env=qa); found {env!r}")
    if expid is not None and not EXPID.match(expid):
        raise SettingsError(f"expid must be Exp followed by 1 to 999 (such as Exp1); found {expid!r}")
    base = ENVIRONMENTS[env]
    return Settings(**{**base.__dict__, "expid": expid}).check()
