"""Errors of the content-addressing layer."""

from __future__ import annotations


class ContentError(Exception):
    """Root of every error raised by :mod:`node.content`."""


class InvalidProof(ContentError, ValueError):
    """An inclusion proof does not connect the leaf to the root (or is malformed)."""


class InvalidGeometry(ContentError, ValueError):
    """A chunk or segment size outside what the design allows."""


class InvalidManifest(ContentError, ValueError):
    """A manifest that does not parse or breaks a rule (sizes, lengths, encoding)."""
