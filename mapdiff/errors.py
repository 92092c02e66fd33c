"""The error hierarchy: one root, so the CLI can turn any input problem into one line and exit 1."""


class MapdiffError(Exception):
    """Root of every error mapdiff raises on purpose."""


class InputError(MapdiffError):
    """An input file, column or option is not what the stage expects.

    The message names the file, the column or option, what was expected and what was found.
    """


class ConfigError(MapdiffError, ValueError):
    """A configuration value is out of its allowed range; ``field`` names the config's field
    (the CLI's option is the field with dashes: ``reach_m`` -> ``--reach-m``)."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


def check_fields(config, names, ok, want: str) -> None:
    """Raise ConfigError naming the first of ``config``'s fields ``names`` whose value fails
    ``ok`` (``want`` says what was expected)."""
    for name in names:
        value = getattr(config, name)
        if not ok(value):
            msg = f"{name} must be {want}; found {value!r}"
            raise ConfigError(msg, field=name)


class StoreError(MapdiffError):
    """The task store cannot be reached, or its schema is not the one this version needs."""


class TaskError(MapdiffError):
    """A task does not exist, or a change of its state is refused (wrong state, lease lost)."""


class TransientError(MapdiffError):
    """Storage or a database failed in a way a retry may not meet again (a server stopped or
    unreachable, a full disk). The CLI exits with :data:`EXIT_TRANSIENT` so that AWS Batch
    retries the job; other errors exit 1 and are not retried."""


#: exit status of a transient failure (EX_TEMPFAIL of sysexits.h)
EXIT_TRANSIENT = 75
