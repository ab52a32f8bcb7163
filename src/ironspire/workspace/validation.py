"""What a name, a URL or a number must be before it is stored.

A value is checked when it is set (CLI, API, import), because a bad one stored once breaks every
later turn or command: a CRLF in a base URL or a malformed IPv6 literal makes each request
raise, ``timeout=nan`` does too and ``inf`` turns the timeout off, a name holding Rich markup or
a terminal escape garbles (or crashes) every listing. Each error says what was wrong and how to
fix it, and nothing is stored.
"""

from __future__ import annotations

import ipaddress
import math
import unicodedata
from urllib.parse import urlsplit

from ironspire.errors import ConfigurationError

MAX_NAME = 100
#: the longest timeout a setting may give (a day): longer is "no timeout" in disguise
MAX_TIMEOUT = 86_400.0
MAX_URL = 2_048


def name(value: str, what: str = "an agent") -> str:
    """A name as stored: stripped, 1..MAX_NAME printable characters, no control or format
    characters (ANSI/OSC escapes, bidi overrides, zero-width tricks)."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} name must be text, not {type(value).__name__}.")
    value = value.strip()
    if not value or len(value) > MAX_NAME:
        raise ConfigurationError(f"{what} needs a name of 1 to {MAX_NAME} characters.")
    bad = next((c for c in value if unicodedata.category(c)[0] in ("C", "Z") and c != " "), None)
    if bad is not None:
        raise ConfigurationError(
            f"{what} name {value!r} contains the control character U+{ord(bad):04X}.",
            hint="Use printable characters only (letters, digits, punctuation, spaces).")
    return value


def url(value: str, what: str) -> str:
    """An http(s) URL a request can be sent to: no whitespace or control characters, a host
    (a valid IP literal if bracketed), a port in range, and no credentials (``user:pass@``)."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigurationError(f"{what} must start with http:// or https://, not {value!r}.")
    if len(value) > MAX_URL:
        raise ConfigurationError(f"{what} is longer than {MAX_URL} characters.")
    if any(c.isspace() or unicodedata.category(c)[0] == "C" for c in value):
        raise ConfigurationError(f"{what} {value!r} contains whitespace or a control character (CR, LF, tab...).")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"{what} {value!r} is not a valid URL ({exc}).") from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ConfigurationError(
            f"{what} holds credentials (user:password@host); they would be stored and shown in clear.",
            hint="Give the URL without them and store the key with `ironspire providers set-key PROVIDER`.")
    host = parts.hostname
    if not host:
        raise ConfigurationError(f"{what} {value!r} has no host.")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ConfigurationError(f"{what} {value!r}: [{host}] is not a valid IPv6 address.") from None
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(f"{what} {value!r}: port {port} is out of range.")
    return value


def seconds(value: object, what: str, *, maximum: float = MAX_TIMEOUT) -> float:
    """A finite positive number of seconds, at most ``maximum`` (nan, inf and 1e300 are refused)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not (math.isfinite(number) and 0 < number <= maximum):
        raise ConfigurationError(f"{what} must be a positive number of seconds up to {maximum:g}, not {value!r}.")
    return number


def text_setting(value: str, what: str) -> str:
    """Any other provider setting: text without control characters (they end up in headers)."""
    if any(unicodedata.category(c)[0] == "C" for c in value):
        raise ConfigurationError(f"{what} {value!r} contains a control character (CR, LF, tab...).")
    return value
