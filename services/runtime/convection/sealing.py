"""Sealed secrets: a secret a service owns travels and rests only in a form others cannot read.

The coordinator seals the secret fields of a saga's input (a VIM password) with the vault's
*public* key the moment a StartSaga arrives, before anything is stored; it cannot open what
it sealed. Only the services that own the secret (the vim- and ro-adapters, which log in to
the VIM) hold the private key. So a password never lands in the coordinator's tables,
outbox, history, logs or spans, nor in any command on the wire; the vim-adapter keeps it
sealed at rest too.

A sealed value is a string `sealed:v1:<base64url>` (so the models keep `str` fields): an
ephemeral X25519 public key, a nonce, and the AES-256-GCM ciphertext under a key derived
(HKDF-SHA256) from the X25519 shared secret. Keys are 32 raw bytes, base64url-encoded
(`convection vault keygen` makes a pair).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "sealed:v1:"
"""How a sealed value starts."""
_INFO = b"convection-vault-v1"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class SealingError(ValueError):
    """A key or a sealed value is malformed, or a value was sealed for another key."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise SealingError(f"not base64url: {exc}") from exc


def generate_keypair() -> tuple[str, str]:
    """Return a new (private key, public key), base64url-encoded."""
    private = X25519PrivateKey.generate()
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return _b64(raw), _b64(private.public_key().public_bytes(*_RAW))


def is_sealed(value: object) -> bool:
    """Tell whether `value` is a sealed secret."""
    return isinstance(value, str) and value.startswith(PREFIX)


def _key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_INFO)
    return hkdf.derive(shared)


class Sealer:
    """Seals secrets for the holder of one private key (knows only the public key)."""

    def __init__(self, public_key: str) -> None:
        raw = _unb64(public_key)
        if len(raw) != 32:
            raise SealingError("a vault public key is 32 bytes, base64url-encoded")
        self._raw = raw
        self._public = X25519PublicKey.from_public_bytes(raw)

    def seal(self, secret: str) -> str:
        """Return `secret` sealed (a value already sealed is returned as it is)."""
        if is_sealed(secret):
            return secret
        ephemeral = X25519PrivateKey.generate()
        epk = ephemeral.public_key().public_bytes(*_RAW)
        key = _key(ephemeral.exchange(self._public), epk, self._raw)
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, secret.encode(), None)
        return PREFIX + _b64(epk + nonce + sealed)


class Vault:
    """Opens secrets sealed for its private key, and seals for it (the owning service)."""

    def __init__(self, private_key: str) -> None:
        raw = _unb64(private_key)
        if len(raw) != 32:
            raise SealingError("a vault private key is 32 bytes, base64url-encoded")
        self._private = X25519PrivateKey.from_private_bytes(raw)
        self.public_key = _b64(self._private.public_key().public_bytes(*_RAW))
        self._sealer = Sealer(self.public_key)

    def seal(self, secret: str) -> str:
        """Return `secret` sealed for this vault (to keep it sealed at rest)."""
        return self._sealer.seal(secret)

    def open(self, value: str) -> str:
        """Return the secret a sealed `value` holds (a value not sealed is returned as is)."""
        if not is_sealed(value):
            return value
        blob = _unb64(value.removeprefix(PREFIX))
        if len(blob) < 32 + 12 + 16:
            raise SealingError("the sealed value is too short")
        epk, nonce, sealed = blob[:32], blob[32:44], blob[44:]
        mine = self._private.public_key().public_bytes(*_RAW)
        shared = self._private.exchange(X25519PublicKey.from_public_bytes(epk))
        try:
            return AESGCM(_key(shared, epk, mine)).decrypt(nonce, sealed, None).decode()
        except InvalidTag as exc:
            raise SealingError("sealed for another key, or altered") from exc


def seal_paths(
    data: dict[str, Any], paths: Iterable[Sequence[str]], seal: Callable[[str], str]
) -> dict[str, Any]:
    """Return a copy of `data` with the string at each path sealed (missing paths skipped)."""
    out: dict[str, Any] = dict(data)
    for path in paths:
        _seal_at(out, list(path), seal)
    return out


def _seal_at(node: dict[str, Any], path: list[str], seal: Callable[[str], str]) -> None:
    head, rest = path[0], path[1:]
    value = node.get(head)
    if not rest:
        if isinstance(value, str):
            node[head] = seal(value)
        return
    if isinstance(value, dict):
        child = dict(value)
        _seal_at(child, rest, seal)
        node[head] = child
