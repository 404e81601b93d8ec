"""Sign webhook bodies exactly as Telnyx does: Ed25519 over `f"{timestamp}|{raw body}"`.

The signature goes, base64-encoded, in `telnyx-signature-ed25519`, and the Unix timestamp
(seconds, a decimal string) in `telnyx-timestamp`. The matching public key, base64 of the
32 raw bytes, is what a receiver's `TELNYX_PUBLIC_KEY` must hold.
"""

from __future__ import annotations

import base64
import time

from nacl.signing import SigningKey

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "generate_keypair",
    "public_key_b64",
    "sign",
]

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"


def generate_keypair(seed: bytes | None = None) -> tuple[SigningKey, str]:
    """A new signing key (or the one made from a 32-byte `seed`) and its base64 public key."""
    key = SigningKey(seed) if seed is not None else SigningKey.generate()
    return key, public_key_b64(key)


def public_key_b64(key: SigningKey) -> str:
    """The base64 public key of `key`, as Telnyx shows it in Mission Control."""
    return base64.b64encode(bytes(key.verify_key)).decode("ascii")


def sign(body: bytes, key: SigningKey, timestamp: int | str | None = None) -> dict[str, str]:
    """The headers Telnyx sends with `body` (the exact bytes that will be POSTed)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(ts.encode("ascii") + b"|" + body).signature
    return {
        SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
        TIMESTAMP_HEADER: ts,
        "content-type": "application/json",
        "user-agent": "telnyx-webhooks",
    }
