"""The CLI's options for encrypted content (``add --encrypt``; ``get``/``export``/``cat`` with a
key) and where the content key comes from. docs/encryption.md describes the choices:

* ``add --encrypt`` with no key option: a new random key, printed once (``"key"`` in
  ``--json``) and stored nowhere;
* ``--key-file F``: on ``add``, the key in F, or a new one written to F (mode 0600, created
  exclusively) when F does not exist; one key file may seal many contents (each sealing derives
  its own keys from a fresh nonce); on ``get``/``export``/``cat``, the key in F;
* ``--key seal1:...``: the key on the command line (visible to ``ps`` and shell history: prefer
  ``--key-file``); opening only;
* ``--passphrase-prompt`` / ``--content-passphrase-file F``: a passphrase stretched with
  Argon2id (``BCAI_INSECURE_FAST_KDF=1`` uses the minimum parameters, for tests only).

No key or passphrase is ever logged, sent to a daemon, or written into the data directory.
"""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._main import Context

if TYPE_CHECKING:
    from node.seal import ContentKey

# node.seal and node.identity (PyNaCl) load in the functions that use them: registering these
# options must not cost `bcai get` through a running node their import.


def add_seal_options(p: argparse.ArgumentParser, *, sealing: bool) -> None:
    """``--encrypt`` and the key sources (``sealing``: for ``add``), or the key sources that
    make ``get``/``export``/``cat`` decrypt."""
    g = p.add_argument_group("encryption (docs/encryption.md)")
    if sealing:
        g.add_argument(
            "--encrypt",
            action="store_true",
            help="store only the content sealed under a content key (ChaCha20-Poly1305); "
            "prints a new random key once unless --key-file or a passphrase is given",
        )
        g.add_argument(
            "--key-file",
            type=Path,
            help="content key file: its key, or a new key written there (0600) if it is absent",
        )
    else:
        g.add_argument("--key-file", type=Path, help="decrypt with the content key in this file")
        g.add_argument(
            "--key",
            metavar="seal1:...",
            help="decrypt with this content key (visible to ps: prefer --key-file)",
        )
    g.add_argument(
        "--passphrase-prompt",
        action="store_true",
        help="a content passphrase (Argon2id) asked on the terminal",
    )
    g.add_argument(
        "--content-passphrase-file",
        type=Path,
        metavar="FILE",
        help="a content passphrase (Argon2id) read from FILE",
    )


def _passphrase(ctx: Context, args: argparse.Namespace, *, confirm: bool) -> str | None:
    from node.seal import BadKey

    if args.content_passphrase_file is not None:
        try:
            text = Path(args.content_passphrase_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise BadKey(
                f"cannot read passphrase file {args.content_passphrase_file}: {exc.strerror}"
            ) from None
        if not text:
            raise BadKey(f"passphrase file {args.content_passphrase_file} is empty")
        return text
    if not args.passphrase_prompt:
        return None
    isatty = getattr(ctx.stdin, "isatty", None)
    if not (isatty and isatty()):
        raise BadKey("--passphrase-prompt needs a terminal; use --content-passphrase-file")
    first = getpass.getpass("Content passphrase: ")
    if confirm and getpass.getpass("Repeat content passphrase: ") != first:
        raise BadKey("the passphrases do not match")
    return first


def _from_passphrase(ctx: Context, text: str) -> ContentKey:
    from node.identity import fast_kdf_requested
    from node.seal import MIN_MEMLIMIT, MIN_OPSLIMIT, ContentKey

    if fast_kdf_requested(ctx.env):
        return ContentKey.from_passphrase(text, opslimit=MIN_OPSLIMIT, memlimit=MIN_MEMLIMIT)
    return ContentKey.from_passphrase(text)


def _check_one_source(args: argparse.Namespace) -> None:
    from node.seal import BadKey

    given = [
        name
        for name, value in (
            ("--key-file", args.key_file),
            ("--key", getattr(args, "key", None)),
            ("--passphrase-prompt", args.passphrase_prompt or None),
            ("--content-passphrase-file", args.content_passphrase_file),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise BadKey(f"give one key source, not {' and '.join(given)}")


def sealing_key(ctx: Context, args: argparse.Namespace) -> tuple[ContentKey | None, dict[str, Any]]:
    """For ``add``: the key to seal with (None: not encrypting) and what to report about it
    (``key`` when a new key is to be shown, ``key_file`` and ``key_created``)."""
    from node.seal import BadKey, ContentKey, read_key_file, write_key_file

    _check_one_source(args)
    wants = args.key_file is not None or args.passphrase_prompt or args.content_passphrase_file
    if not args.encrypt:
        if wants:
            raise BadKey("a key or passphrase for add needs --encrypt")
        return None, {}
    text = _passphrase(ctx, args, confirm=True)
    if text is not None:
        return _from_passphrase(ctx, text), {"key_source": "passphrase"}
    if args.key_file is not None:
        path = Path(args.key_file)
        if path.exists():
            return read_key_file(path), {"key_file": str(path), "key_created": False}
        key = ContentKey.generate()
        try:
            write_key_file(path, key)
        except OSError as exc:
            raise BadKey(f"cannot create key file {path}: {exc.strerror}") from None
        return key, {"key_file": str(path), "key_created": True}
    key = ContentKey.generate()
    return key, {"key": key.text()}


def opening_key(ctx: Context, args: argparse.Namespace) -> ContentKey | None:
    """For ``get``/``export``/``cat``: the key to decrypt with, or None (no decryption)."""
    from node.seal import ContentKey, read_key_file

    _check_one_source(args)
    text = _passphrase(ctx, args, confirm=False)
    if text is not None:
        return _from_passphrase(ctx, text)
    if args.key_file is not None:
        return read_key_file(args.key_file)
    if args.key is not None:
        return ContentKey.from_text(args.key)
    return None


def key_report_text(info: dict[str, Any]) -> str:
    """The human line about the key after ``add --encrypt``."""
    if "key" in info:
        return f"encrypted; content key (shown once, stored nowhere: keep it): {info['key']}"
    if "key_file" in info:
        verb = "new key written to" if info.get("key_created") else "key from"
        return f"encrypted; {verb} {info['key_file']}"
    return "encrypted with the passphrase"
