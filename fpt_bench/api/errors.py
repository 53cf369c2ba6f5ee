"""Errors a user can cause. The CLI prints them as one message and exits with code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x' or 'y'?"`` for the known names closest to a misspelt one, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""


class UserError(Exception):
    """A problem the user can fix (bad config, missing data, broken plugin, corrupt file).

    The message must say what is wrong and what to do; the CLI shows it without a traceback.
    """

    exit_code = 2


class PluginError(UserError):
    """A plugin failed to load or register, or two plugins registered the same name."""


class DataMissingError(UserError):
    """A task's data files are not in the data directory (and could not be fetched)."""


class CorruptFileError(UserError):
    """A file exists but is not in the expected format (wrong magic, truncated, bad checksum...)."""


class ResultWriteError(UserError):
    """A result file could not be written (a full disk, no permission): the sweep stops, nothing is lost."""
