"""Signatures of registered models: what inference checks before it loads, and so runs, one.

A pyfunc model is code (loading it unpickles it), so inference loads only versions signed with
the platform's key: the training pipeline signs each version it registers, and an operator signs
a version made by hand with ``finone sign-model``. The signature is an HMAC-SHA256, keyed by a
key derived from the platform secret, over the digest of the version's artifacts: every file's
path below the model's root with the SHA-256 of its bytes, in path order. It is kept as a tag of
the model version.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from core.errors import PlatformError

__all__ = [
    "SIGNATURE_TAG",
    "SIGNING_KEY_ENV",
    "artifacts_digest",
    "sign",
    "signing_key",
    "signing_key_env",
    "signing_key_from_env",
    "verifies",
]

SIGNATURE_TAG = "finone.signature"
# Training processes (the retrain scheduler, Tune's driver) get the derived key, never the
# platform secret it comes from.
SIGNING_KEY_ENV = "FINONE_MODEL_SIGNING_KEY"
# A fixed label: the same secret keys JWT encryption too, and each use gets a key of its own.
_KEY_LABEL = b"finone/model-signing/v1"
_CHUNK = 1 << 20


def signing_key(secret: str) -> bytes:
    """The model-signing key derived from the platform secret (``FINONE_SECRET_KEY``)."""
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def signing_key_env(secret: str) -> dict[str, str]:
    """The environment that lets a training process sign what it registers."""
    return {SIGNING_KEY_ENV: signing_key(secret).hex()}


def signing_key_from_env() -> bytes:
    """The key ``signing_key_env`` put in this process's environment."""
    value = os.environ.get(SIGNING_KEY_ENV)
    if not value:
        raise PlatformError(
            f"{SIGNING_KEY_ENV} is not set, so registered models could not be signed; "
            "train through `finone train` or the platform's retrain scheduler"
        )
    return bytes.fromhex(value)


def artifacts_digest(root: Path) -> str:
    """SHA-256 over every file below ``root``: relative paths and contents, in path order."""
    files = sorted((path.relative_to(root).as_posix(), path) for path in root.rglob("*"))
    listing = [(name, _file_sha256(path)) for name, path in files if path.is_file()]
    # JSON keeps the listing unambiguous whatever characters the names hold.
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def sign(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def verifies(key: bytes, digest: str, signature: str | None) -> bool:
    """Whether ``signature`` is this key's signature of ``digest`` (compared in constant time)."""
    return signature is not None and hmac.compare_digest(sign(key, digest), signature)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
