"""The ``mapdiff`` command: one subcommand per stage, imported lazily so ``--help`` is instant."""

from __future__ import annotations

import importlib
import os
import signal
import sys

import click

SUBCOMMANDS = {
    "network": ("mapdiff_cli.network", "network", "Build a map GeoPackage from an OpenStreetMap extract."),
    "match": ("mapdiff_cli.match", "match", "Match GPS traces to the road network (HMM)."),
    "simulate": ("mapdiff_cli.simulate", "simulate", "Simulate a fleet with ground truth on a map."),
    "coverage": ("mapdiff_cli.coverage", "coverage", "Count which roads were driven, which way, and by whom."),
    "merge": ("mapdiff_cli.merge", "merge", "Merge the outputs of disjoint windows or shards of one stage."),
    "job": ("mapdiff_cli.job", "job", "Run a shard of a stage as an AWS Batch array child, or a whole array here."),
    "plan": ("mapdiff_cli.plan", "plan", "Choose the clips to ask the cars for (video requests, tasks)."),
    "tasks": ("mapdiff_cli.tasks", "tasks", "List, show, change and claim tasks in the task store; migrate it."),
    "upload": ("mapdiff_cli.upload", "upload", "Simulate the cars uploading the requested clips."),
    "observe": ("mapdiff_cli.observe", "observe", "Turn pixel detections into bearing and range observations."),
    "locate": ("mapdiff_cli.locate", "locate", "Estimate object positions from many observations."),
    "diff": ("mapdiff_cli.diff", "diff", "Judge the map against what the fleet saw: where it is wrong."),
    "report": ("mapdiff_cli.report", "report", "Write the diffs as one self-contained HTML page."),
    "evaluate": ("mapdiff_cli.evaluate", "evaluate", "Score a stage's output against a simulation's truth."),
    "experiment": ("mapdiff_cli.experiment", "experiment", "Run, compare and deploy experiments (EXP.toml)."),
    "warmup": ("mapdiff_cli.warmup", "warmup", "Compile every kernel ahead (for container images)."),
}


#: exit status after Ctrl-C (128 + SIGINT), what a shell reports for a process it interrupted
EXIT_INTERRUPTED = 130
#: and after SIGTERM (128 + 15): what AWS Batch sends a job it stops (a timeout, a cancel)
EXIT_TERMINATED = 143
#: the signal the last interrupt came from (SIGALRM only retries it; None: none came)
_RECEIVED = [None]


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _placed_outputs() -> list[str]:
    io = sys.modules.get("mapdiff.io")  # not imported (yet): nothing can have been written
    return io.placed_outputs() if io is not None else []


def _what_was_written(since: int) -> str:
    """What an interrupted run leaves: nothing, or the whole outputs it had put in place before
    the signal came (the ``since``-th on: a caller's process may have run other commands)."""
    placed = _placed_outputs()[since:]
    return f"written before it: {', '.join(placed)}" if placed else "nothing written"


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx, name):
        if name not in SUBCOMMANDS:
            return None
        module, attr, _ = SUBCOMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        # Ctrl-C: one line and the shell's status for SIGINT (130), not click's "Aborted!" (1).
        # The outputs are written atomically, so none is left half-written; the line names those
        # in place before the signal (it may come as the run ends: a CI run of stop 50). A native
        # library may turn the interrupt into an error of its own: while a Numba kernel runs, a
        # SystemError caused by it; while pyarrow imports zoneinfo on first use, an ArrowInvalid
        # that only says zoneinfo must be installed (a traceback in the CI of stop 50). So any
        # error once a signal came is the interrupt's.
        since = len(_placed_outputs())
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            pass
        except Exception as exc:
            if not (_caused_by_interrupt(exc) or _RECEIVED[0] is not None):
                raise
        terminated = _RECEIVED[0] == signal.SIGTERM
        click.echo(f"mapdiff: {'terminated' if terminated else 'interrupted'}; {_what_was_written(since)}", err=True)
        status = EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
        # the outputs' temporary files are gone (their writers clean up as the interrupt passes);
        # skip the interpreter's shutdown, where native threads still running (pyarrow's, numba's)
        # crashed it now and then (SIGSEGV)
        if not _OWN_PROCESS:  # (in a caller's process, such as a test's CliRunner)
            sys.exit(status)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    def format_commands(self, ctx, formatter):
        rows = [(name, SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="mapdiff")
def cli():
    """mapdiff: find where the road map is wrong, from a fleet's GPS traces and dashcam detections."""
    import logging

    # s3fs runs aiohttp on an event loop; when a server goes away, asyncio logs the orphaned
    # tasks' tracebacks at exit. The error itself reaches the user as one line (mapdiff.io).
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)


#: whether this process is mapdiff's own (the console script, python -m), not a caller's
_OWN_PROCESS = False


#: how soon an interrupt that landed in a native library's callback is tried again
INTERRUPT_RETRY_S = 0.05


def _swallowed_there(frame) -> bool:
    """Whether an exception raised at ``frame`` would be printed and swallowed, not reach the
    command: Python runs there on behalf of a ctypes callback of llvmlite (Numba's compiler and
    its cache call back into Python), or in a finalizer (``__del__``: a SIGTERM that landed in
    pyarrow's ParquetWriter.__del__ as a run ended printed "Exception ignored ... Traceback",
    CI of stop 52)."""
    while frame is not None:
        if f"{os.sep}llvmlite{os.sep}" in frame.f_code.co_filename or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _interrupt(signum, frame):
    """SIGINT or SIGTERM (and its retry, SIGALRM): KeyboardInterrupt, unless it would land where
    it is swallowed (:func:`_swallowed_there`: the run then went on and wrote its output); try
    again shortly there. A terminated run so unwinds as an interrupted one: its temporary files and folders
    (a month's locate spills gigabytes) go, where the default SIGTERM left them."""
    if signum != signal.SIGALRM:
        _RECEIVED[0] = signum
    if _swallowed_there(frame):
        signal.setitimer(signal.ITIMER_REAL, INTERRUPT_RETRY_S)
        return
    raise KeyboardInterrupt


def _handle_interrupts():
    # a process started with SIGINT ignored (a shell's background job) keeps ignoring it
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGALRM, _interrupt)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGALRM, _interrupt)


def run():
    """The console script: ``cli`` in a process of its own."""
    global _OWN_PROCESS
    _OWN_PROCESS = True
    _handle_interrupts()
    _one_blas_thread()
    cli()


def _one_blas_thread():
    """One OpenBLAS thread (a user's own ``OPENBLAS_NUM_THREADS`` is kept), set before numpy
    loads it. No stage does linear algebra big enough to share out, and OpenBLAS starts a
    thread per core that spins: measured on an observe shard of the 300 x 3 fleet (two runs
    each), one thread took 11.4-11.8 s of CPU instead of 12.3-13.1 and 10.2-10.6 s of wall
    instead of 10.9-11.7; a coverage shard 1.0 s of CPU instead of 1.2 at the same wall; and
    in an array of two workers the spinning takes the other's core."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


if __name__ == "__main__":
    run()
