"""Typed errors of sealed (encrypted) content; node.app maps them to exit codes.

USAGE (2): :class:`WrongKey`, :class:`NotSealed`, :class:`BadKey` (the caller gave the wrong
thing). VERIFY_FAILED (4): :class:`MalformedSeal`, :class:`SealTampered` (the bytes are not what
was sealed). Every message is one line and never holds key material.
"""

from __future__ import annotations


class SealError(Exception):
    """Base of every error of node.seal."""


class BadKey(SealError):
    """A key text or key file that is not a content key, or a key file that cannot be read."""


class NotSealed(SealError):
    """The content does not start with a seal header: it is not encrypted."""


class WrongKey(SealError):
    """The header does not authenticate under the key or passphrase given."""


class MalformedSeal(SealError):
    """A header with an unknown version, out-of-bounds parameters or a wrong length."""


class SealTampered(SealError):
    """A record fails authentication, is missing (truncation) or out of order, or the
    decrypted plaintext disagrees with its committed size or root."""
