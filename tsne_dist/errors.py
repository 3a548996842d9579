"""Errors a user can cause.

Every error here is something the user can fix (bad input, bad config, a run store
that does not fit). The CLI prints its one-line message and exits with code 2.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Base class for errors a user can fix; the CLI maps them to exit code 2.

    Parameters
    ----------
    problem : str
        What is wrong, in plain words.
    fix : str, optional
        What the user can do about it.
    """

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        message = problem if not fix else f"{problem}; {fix}"
        super().__init__(" ".join(message.split()))


class InputError(UserError):
    """The input data (vectors, ids, metadata) cannot be used as given."""


class ConfigError(UserError):
    """A setting is invalid or inconsistent with the data."""


class StoreError(UserError):
    """The output folder or run store cannot be used for this run."""


class DivergedError(UserError):
    """The t-SNE optimisation diverged (a setting such as the learning rate is too large)."""
