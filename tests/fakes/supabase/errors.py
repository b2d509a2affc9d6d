"""Supabase Auth's error answers, in the two shapes the server speaks.

A request whose `X-Supabase-Api-Version` header names a date on or after 2024-01-01 (supabase-py
always sends `2024-01-01`) gets `{"code": "<error_code>", "message": ...}` and the header echoed
back; any other request gets the original `{"code": <status>, "error_code": ..., "msg": ...}`.
Both carry the error code in an `x-sb-error-code` header. The API gateway's own refusals (no or
a wrong `apikey`) are `{"message": ..., "hint": ...}` and carry neither.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["API_VERSION_HEADER", "AuthError", "error_body", "versioned"]

API_VERSION_HEADER = "X-Supabase-Api-Version"


class AuthError(Exception):
    """An error the server answers with `status` and `error_code` `code`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def versioned(header: str | None) -> bool:
    """Whether an `X-Supabase-Api-Version` value selects the 2024-01-01 error shape."""
    try:
        return datetime.strptime(header or "", "%Y-%m-%d") >= datetime(2024, 1, 1)
    except ValueError:
        return False


def error_body(error: AuthError, *, version_2024: bool) -> dict[str, Any]:
    if version_2024:
        return {"code": error.code, "message": error.message}
    return {"code": error.status, "error_code": error.code, "msg": error.message}
