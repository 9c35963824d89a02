"""The package's one base exception: every error whose message is meant for the user derives from VfiError, so the
command line catches that one type (and prints ``error: <message>``)."""

from __future__ import annotations


class VfiError(Exception):
    """An error whose message is meant for the user: what is wrong and what to do, in one line."""


class CliError(VfiError):
    """A failure of the command line itself, reported like every VfiError: ``error: <message>``, exit code 1."""


class EngineError(VfiError, ValueError):
    """A user-facing configuration error of an engine; the plugin prefixes the filter name."""


class MediaError(VfiError, ValueError):
    """A source, codec or output that cannot be used; the message is meant for the user."""
