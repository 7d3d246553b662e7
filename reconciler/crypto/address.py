"""Where a credential belongs, and the length-prefixed encoding that binds data to it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CredentialAddress:
    """The row a credential belongs to. Bound into every envelope and fingerprint.

    A ciphertext moved to another organization, provider, user or field no longer decrypts,
    because its associated data is made from this address.
    """

    organization: str
    provider: str
    user: str
    field: str

    def __post_init__(self) -> None:
        for name in ("organization", "provider", "user", "field"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"CredentialAddress.{name} must be a str")

    def __str__(self) -> str:
        return f"{self.organization}/{self.provider}/{self.user}/{self.field}"

    def parts(self) -> tuple[bytes, bytes, bytes, bytes]:
        """The four parts as UTF-8, in the order the format document gives."""
        return (
            self.organization.encode("utf-8"),
            self.provider.encode("utf-8"),
            self.user.encode("utf-8"),
            self.field.encode("utf-8"),
        )


def length_prefixed(*items: bytes) -> bytes:
    """Each item as a 4-byte big-endian length followed by its bytes.

    Length prefixes make the encoding injective: ("ab", "c") and ("a", "bc") never collide,
    which plain concatenation or a separator character could not promise.
    """
    return b"".join([len(item).to_bytes(4, "big") + item for item in items])
