"""``mapdiff job STAGE ARGS...``: the container's entry point on AWS Batch, and a local runner
that starts an array job's processes as Batch would.

On Batch an array job's children differ only in ``AWS_BATCH_JOB_ARRAY_INDEX``; this module
turns that (and ``AWS_BATCH_JOB_ARRAY_SIZE``, which the job definition sets, since Batch does
not) into the stage's ``--shard I/N``, and each output option of the stage into a key under the
given prefix that is the same on every attempt: ``PREFIX/part-00003-of-00007.parquet``. Writes
are atomic (a temporary name, then a rename or one S3 PUT), so a retried attempt overwrites its
own part whole and a reader never sees half of one.

Exit status tells Batch what to retry: 0 done; :data:`mapdiff.errors.EXIT_TRANSIENT` (75) a
transient storage or database failure (retry); 1 bad input and 2 a bad command line (a retry
would fail again).
"""

from __future__ import annotations

import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from mapdiff.errors import EXIT_TRANSIENT, InputError
from mapdiff.jobs.shards import Shard

INDEX_VAR = "AWS_BATCH_JOB_ARRAY_INDEX"
SIZE_VAR = "AWS_BATCH_JOB_ARRAY_SIZE"
#: the stage's arguments when none are given on the command line (a job definition's environment)
ARGS_VAR = "MAPDIFF_ARGS"


@dataclass(frozen=True)
class StageJob:
    """How a stage runs as a job: its output options (each becomes a prefix of parts) and the
    suffix of its part files; an unsharded stage (``sharded`` False) runs as a single job with
    its arguments as given."""

    outputs: tuple[str, ...]
    suffix: str = ".parquet"
    sharded: bool = True


STAGE_JOBS = {
    "match": StageJob(("-o", "--output", "--paths")),
    "coverage": StageJob(("-o", "--output")),
    "observe": StageJob(("-o", "--output", "--rejects")),
    "locate": StageJob(("-o", "--output")),
    "simulate": StageJob(("-o", "--output"), suffix=""),
    "diff": StageJob(("-o", "--output"), suffix=".gpkg"),
    # single jobs: the plan (one over the whole coverage), the upload, the report, and the merge
    # of an array job's parts
    "plan": StageJob((), sharded=False),
    "upload": StageJob((), sharded=False),
    "report": StageJob((), sharded=False),
    "merge": StageJob((), sharded=False),
    # the task and results stores' migrations (`mapdiff job tasks migrate`), run on each deploy
    "tasks": StageJob((), sharded=False),
}


def shard_from_env(env=None) -> Shard:
    """The shard of this array child (``Shard(0, 1)`` outside an array job)."""
    env = os.environ if env is None else env
    raw_index, raw_size = env.get(INDEX_VAR), env.get(SIZE_VAR)
    if raw_index is None and raw_size is None:
        return Shard()
    try:
        index, size = int(raw_index or 0), int(raw_size or 0)
    except ValueError:
        msg = f"{INDEX_VAR}={raw_index!r} and {SIZE_VAR}={raw_size!r}: expected whole numbers"
        raise InputError(msg) from None
    if raw_size is None:
        msg = f"{INDEX_VAR} is set ({index}) but {SIZE_VAR} is not; set it to the array size in the job definition"
        raise InputError(msg)
    if not 0 <= index < size:
        msg = f"{INDEX_VAR}={index} is outside 0..{size - 1} ({SIZE_VAR}={size})"
        raise InputError(msg)
    return Shard(index, size)


def job_args(stage: str, args, shard: Shard) -> list[str]:
    """The stage's command line for ``shard``: every output option's value (a prefix) becomes
    the part's key under it, and ``--shard`` is added."""
    if stage not in STAGE_JOBS:
        msg = f"stage must be one of {sorted(STAGE_JOBS)} to run as a job; found {stage!r}"
        raise InputError(msg)
    job = STAGE_JOBS[stage]
    if not job.sharded:
        if shard.count > 1:
            msg = f"mapdiff job {stage}: the stage runs as a single job; found an array of {shard.count}"
            raise InputError(msg)
        return list(args)
    part = f"{shard.name}{job.suffix}"
    out, args, seen = [], list(args), False
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition("=")
        if name in job.outputs and eq:
            out.append(f"{name}={_under(value, part)}")
            seen |= name in ("-o", "--output")
        elif a in job.outputs and i + 1 < len(args):
            out += [a, _under(args[i + 1], part)]
            seen |= a in ("-o", "--output")
            i += 1
        elif a == "--shard" or name == "--shard":
            msg = "--shard is set by the job from AWS_BATCH_JOB_ARRAY_INDEX and _SIZE; do not pass it"
            raise InputError(msg)
        else:
            out.append(a)
        i += 1
    if not seen:
        msg = f"mapdiff job {stage}: no -o PREFIX given; expected the folder or key prefix of the parts"
        raise InputError(msg)
    return [*out, "--shard", str(shard)]


def _under(prefix: str, part: str) -> str:
    return f"{prefix.rstrip('/')}/{part}"


def stage_args(args, env=None) -> list[str]:
    """The stage's arguments: those given, else ``$MAPDIFF_ARGS`` split as a shell would."""
    env = os.environ if env is None else env
    return list(args) if args else shlex.split(env.get(ARGS_VAR, ""))


def run_local_array(stage: str, args, *, size: int, workers: int = 1, attempts: int = 1, quiet: bool = False,
                    echo=print) -> int:
    """Run the array job ``mapdiff job STAGE ARGS`` of ``size`` children here, ``workers`` at a
    time, each a process with exactly Batch's variables set; a child that exits transient (75)
    is started again up to ``attempts`` times, as Batch's retry strategy would. Children that
    run side by side are quiet (their progress lines would interleave). Returns 0 when every
    child succeeded, else 75 when every failure was transient, else 1."""
    if workers > 1 and "-q" not in args and "--quiet" not in args:
        args = [*args, "-q"]
    pending = [(i, 1) for i in range(size)]
    running: dict[int, tuple[subprocess.Popen, int, float]] = {}
    ended: queue.Queue = queue.Queue()  # (shard, wait4's status and its own peak memory), as each ends
    failed: dict[int, int] = {}
    while pending or running:
        while pending and len(running) < workers:
            i, attempt = pending.pop(0)
            env = {**os.environ, INDEX_VAR: str(i), SIZE_VAR: str(size)}
            cmd = [sys.executable, "-m", "mapdiff_cli.main", "job", stage, *args]
            proc = subprocess.Popen(cmd, env=env)
            running[i] = (proc, attempt, time.monotonic())
            threading.Thread(target=lambda i=i, pid=proc.pid: ended.put((i, *os.wait4(pid, 0)[1:])),
                             daemon=True).start()
        i, status, usage = ended.get()
        proc, attempt, t0 = running.pop(i)
        code = proc.returncode = os.waitstatus_to_exitcode(status)
        if code == EXIT_TRANSIENT and attempt < attempts:
            echo(f"shard {i}/{size}: attempt {attempt} failed (transient, exit {code}); retrying")
            pending.append((i, attempt + 1))
        elif code != 0:
            failed[i] = code
        elif not quiet:
            echo(f"shard {i}/{size}: done in {time.monotonic() - t0:.1f} s, peak {usage.ru_maxrss / 1024:,.0f} MB")
    if not failed:
        return 0
    echo(f"{len(failed)} of {size} shards failed: " + ", ".join(f"{i} (exit {c})" for i, c in sorted(failed.items())))
    return EXIT_TRANSIENT if all(c == EXIT_TRANSIENT for c in failed.values()) else 1
