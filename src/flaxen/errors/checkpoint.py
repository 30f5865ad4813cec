"""Errors of flaxen.checkpoint."""

from __future__ import annotations

from flaxen.errors.base import FlaxenError, names, short_repr  # noqa: F401

__all__: list[str] = []
