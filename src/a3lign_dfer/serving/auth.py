"""The service's API key (docs/serving.md): a service reachable beyond loopback must not answer strangers.

The key comes from the environment (A3LIGN_API_KEY) or a file (`serve --api-key-file`), never from
params.yaml, which is committed. Clients send `Authorization: Bearer <key>` or `X-API-Key: <key>`.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from a3lign_dfer.errors import UserError

ENV_VAR = "A3LIGN_API_KEY"
HOW = f"set {ENV_VAR} or pass --api-key-file PATH; clients then send 'Authorization: Bearer <key>'"


class AuthError(UserError):
    """The key cannot be had, or the service would be exposed without one."""


def is_loopback(host: str) -> bool:
    """Only this machine can reach `host` (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:                  # a host name other than localhost may resolve to anything
        return False


def load_key(key_file: Path | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The key: the file's stripped content when a file is given, else A3LIGN_API_KEY; None when neither
    holds one. A key must be visible ASCII, as an HTTP header can carry it unchanged."""
    if key_file is not None:
        try:
            key = key_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as err:
            raise AuthError(f"cannot read the API key file {key_file}: {err}") from None
        if not key:
            raise AuthError(f"the API key file {key_file} is empty")
        source = str(key_file)
    else:
        key, source = environ.get(ENV_VAR, "").strip() or None, ENV_VAR
    if key is not None and not all("!" <= c <= "~" for c in key):
        raise AuthError(f"the API key in {source} must be printable ASCII without spaces")
    return key


def required_key(host: str, key_file: Path | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The key `serve` enforces (None: an open service, allowed on loopback only); AuthError says how to
    give one when `host` is reachable from other machines and none is configured."""
    key = load_key(key_file, environ)
    if key is None and not is_loopback(host):
        raise AuthError(f"--host {host} makes the service reachable from other machines, so it needs an API key: "
                        f"{HOW}")
    return key


def authorized(headers: Mapping[str, str], key: str) -> bool:
    """Whether the request carries `key` (either header form), compared in constant time."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    offered = [token.strip()] if scheme.lower() == "bearer" else []
    offered.append(headers.get("x-api-key", "").strip())
    expected = key.encode()
    return any(hmac.compare_digest(given.encode("latin-1", "replace"), expected) for given in offered if given)
