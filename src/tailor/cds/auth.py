"""JWT authentication of the calling EHR (CDS Hooks 1.0 security model).

The EHR signs a JWT per call and sends it as ``Authorization: Bearer <jwt>``. The token must
be signed (ES384 or RS384; ES256/RS256 also accepted) by a key configured for its ``iss``, its
``aud`` must be this service's endpoint URL, and ``exp``, ``iat`` and ``jti`` are required; a
``jti`` seen before (until its expiry) is a replay. Issuers and keys come from the
``TAILOR_CDS_ISSUERS`` setting: JSON mapping each issuer to a JWK Set (``{"keys": [...]}``)
or a PEM public key.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from tailor.exceptions import AuthenticationError, InvalidFieldError

__all__ = ["ALGORITHMS", "EhrVerifier"]

ALGORITHMS = ["ES384", "RS384", "ES256", "RS256"]


def _config(message: str) -> InvalidFieldError:
    return InvalidFieldError(message, field="cds_issuers", rule="jwks")


class EhrVerifier:
    """Verifies CDS Hooks JWTs against the configured issuers (see the module docstring)."""

    def __init__(self, issuers: str | Mapping[str, Any]) -> None:
        import jwt

        try:
            raw = json.loads(issuers) if isinstance(issuers, str) else dict(issuers)
        except json.JSONDecodeError as exc:
            raise _config(f"TAILOR_CDS_ISSUERS is not JSON ({exc})") from None
        if not isinstance(raw, Mapping):
            raise _config("TAILOR_CDS_ISSUERS must map issuer -> JWKS or PEM key")
        self.keys: dict[str, list[tuple[str | None, Any]]] = {}
        for iss, spec in raw.items():
            keys: list[tuple[str | None, Any]] = []
            if isinstance(spec, str):
                keys.append((None, spec))
            elif isinstance(spec, Mapping) and isinstance(spec.get("keys"), list):
                for jwk in spec["keys"]:
                    try:
                        keys.append((jwk.get("kid"), jwt.PyJWK(jwk).key))
                    except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError) as exc:
                        raise _config(f"TAILOR_CDS_ISSUERS: a key of {iss!r} is "
                                                 f"not a usable JWK ({exc})") from None
            else:
                raise _config(f"TAILOR_CDS_ISSUERS: {iss!r} needs a JWK Set or a PEM "
                                         "public key")
            self.keys[str(iss)] = keys
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(self, authorization: str | None, audience: str) -> dict[str, Any]:
        """The verified claims; :class:`AuthenticationError` (401) naming what failed."""
        import jwt

        if not self.keys:
            raise AuthenticationError("no EHR issuers are configured (TAILOR_CDS_ISSUERS); the "
                                      "CDS service accepts no calls")
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthenticationError("Authorization: Bearer <JWT> signed by the EHR is "
                                      "required")
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the bearer token is not a JWT ({exc})") from None
        iss = unverified.get("iss")
        if iss not in self.keys:
            raise AuthenticationError(f"JWT issuer {iss!r} is not a configured EHR")
        candidates = [k for kid, k in self.keys[iss] if kid in (None, header.get("kid"))]
        if not candidates:
            raise AuthenticationError(f"no key of issuer {iss!r} has kid {header.get('kid')!r}")
        last: Exception | None = None
        for key in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token, key, algorithms=ALGORITHMS, audience=audience, issuer=iss,
                    options={"require": ["iss", "aud", "exp", "iat", "jti"]}, leeway=30)
                break
            except jwt.InvalidSignatureError as exc:
                last = exc
            except jwt.PyJWTError as exc:
                raise AuthenticationError(f"JWT rejected: {exc}") from None
        else:
            raise AuthenticationError(f"JWT rejected: {last}")
        now = time.time()
        with self._lock:
            self._seen = {j: e for j, e in self._seen.items() if e > now}
            jti = str(claims["jti"])
            if jti in self._seen:
                raise AuthenticationError("JWT rejected: jti already used (replay)")
            self._seen[jti] = float(claims["exp"]) + 30
        return claims
