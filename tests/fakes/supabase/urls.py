"""Redirect targets as Supabase Auth judges and builds them.

`RedirectPolicy.allows` follows the server's rules: a URL on the site URL's scheme and host (any
port on a loopback host) passes; a URL whose host is an IP address passes only if it is a
loopback address (whatever the allow-list says); hosts with odd characters fail; anything else
must match an allow-list pattern (the fragment is ignored). Patterns are globs whose separators
are '.' and '/': `*` and `?` stay within a host label or path segment, `**` crosses them, and
`[a-z]`, `[!a-z]` and `{a,b}` work as in the server's glob library.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

__all__ = ["RedirectPolicy", "compile_glob", "email_link", "fragment_url", "merge_query"]

_NOT_SEPARATOR = r"[^./]"
_DECIMAL_HOST = re.compile(r"^[0-9]+$")
_REGULAR_HOST = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$")
_LOCALHOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"})


def _translate(pattern: str, start: int, in_braces: bool) -> tuple[str, int]:
    """Regex source for `pattern[start:]` up to the end (or a ',' / '}' inside braces)."""
    out: list[str] = []
    i = start
    while i < len(pattern):
        char = pattern[i]
        if in_braces and char in ",}":
            return "".join(out), i
        if char == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
            else:
                out.append(_NOT_SEPARATOR + "*")
                i += 1
            continue
        if char == "?":
            out.append(_NOT_SEPARATOR)
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            escaped = "".join("\\" + c if c in "\\^]" else c for c in body)
            out.append(f"[{'^' if negate else ''}{escaped}]")
            i = end
        elif char == "{":
            choices: list[str] = []
            i += 1
            while True:
                choice, i = _translate(pattern, i, in_braces=True)
                choices.append(choice)
                if i >= len(pattern) or pattern[i] == "}":
                    break
                i += 1  # past ','
            out.append("(?:" + "|".join(choices) + ")")
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out), i


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regex matching what the glob `pattern` matches (separators '.' and '/')."""
    source, _ = _translate(pattern, 0, in_braces=False)
    return re.compile(source, re.DOTALL)


def _is_localhost(host: str) -> bool:
    host = host.lower()
    return host in _LOCALHOSTS or host.endswith(".localhost")


class RedirectPolicy:
    """Which redirect targets the server accepts, given its site URL and allow-list."""

    def __init__(self, site_url: str, allow_list: Sequence[str]) -> None:
        self.site_url = site_url
        self.allow_list = tuple(allow_list)
        self._patterns = [compile_glob(p) for p in self.allow_list]

    def allows(self, url: str) -> bool:
        if not url:
            return False
        try:
            base, target = urlsplit(self.site_url), urlsplit(url)
            base_port, target_port = base.port, target.port
        except ValueError:
            return False
        host = target.hostname or ""
        if (base.hostname == host and base.scheme == target.scheme
                and (base_port == target_port or _is_localhost(host))):
            return True
        if _DECIMAL_HOST.match(host):
            return False
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            pass
        if target.scheme.lower() in ("http", "https") and not _REGULAR_HOST.match(host):
            return False
        without_fragment = url.partition("#")[0]
        return any(p.fullmatch(without_fragment) for p in self._patterns)

    def choose(self, *candidates: str | None) -> str:
        """The first allowed candidate (redirect_to, then Referer), else the site URL."""
        for candidate in candidates:
            if candidate and self.allows(candidate):
                return candidate
        return self.site_url


def _encode_sorted(pairs: Iterable[tuple[str, str]]) -> str:
    """Form-encode like Go's `url.Values.Encode`: keys sorted, spaces as '+'."""
    return urlencode(sorted(pairs, key=lambda pair: pair[0]))


def merge_query(url: str, updates: Mapping[str, str]) -> str:
    """`url` with `updates` set in its query string; its other parameters are kept."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k not in updates]
    return urlunsplit(parts._replace(query=_encode_sorted([*kept, *updates.items()])))


def fragment_url(url: str, params: Mapping[str, str], *, replace: bool = False) -> str:
    """`url` with `params` as its fragment: replacing any fragment, or appended after '#'
    the way the server appends implicit-flow tokens (even after an existing fragment)."""
    fragment = _encode_sorted(params.items())
    if replace:
        return urlunsplit(urlsplit(url)._replace(fragment=fragment))
    return f"{url}#{fragment}"


def email_link(base: str, token: str, kind: str, redirect_to: str) -> str:
    """An emailed verification link. As on the server, `redirect_to` is escaped only when it
    holds '&', '=' or '#'; otherwise it is pasted in as it is."""
    redirect = quote_plus(redirect_to) if any(c in redirect_to for c in "&=#") else redirect_to
    return f"{base}/verify?token={quote_plus(token)}&type={quote_plus(kind)}" \
           f"&redirect_to={redirect}"
