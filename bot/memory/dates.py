"""Calendar dates named in a query, as patterns on the ISO date a memory was recorded."""

from __future__ import annotations

import re
import string

__all__ = ["dates_named"]

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_MONTH_NUMBER = {**{m: n for n, m in enumerate(_MONTHS, 1)},
                 **{m[:3]: n for n, m in enumerate(_MONTHS, 1)}, "sept": 9}
_MONTH = "|".join(sorted(_MONTH_NUMBER, key=len, reverse=True))
_DAY = r"(?:3[01]|[12]\d|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d\d"
# A month needs a day or a year beside it ("13 October", "Oct 13, 2023", "July 2023"), or
# "in"/"during" before it when written in full ("in June"), so that "may" stays a verb.
_DATE = re.compile(
    rf"""\b(?:(?P<iso>{_YEAR}-[01]\d-[0-3]\d)
    |(?P<d1>{_DAY})\s+(?:of\s+)?(?P<m1>{_MONTH})\b\.?(?:,?\s+(?P<y1>{_YEAR}))?
    |(?P<m2>{_MONTH})\.?\s+(?P<d2>{_DAY})(?:,?\s+(?P<y2>{_YEAR}))?
    |(?P<m3>{_MONTH})\.?,?\s+(?P<y3>{_YEAR})
    |(?:in|during)\s+(?:(?P<m4>{"|".join(_MONTHS)})(?:\s+(?P<d4>{_DAY}))?(?:,?\s+(?P<y4>{_YEAR}))?
      |(?P<y5>{_YEAR}))
    )\b""",
    re.IGNORECASE | re.VERBOSE,
)

# Every date above has a digit or a month's full name: most messages have neither, and this
# finds that far sooner than the whole pattern.
_HINT = re.compile(r"\d|" + "|".join(_MONTHS), re.IGNORECASE)


def dates_named(text: str) -> list[str]:
    """The calendar dates ``text`` names, as ``like`` patterns on a memory's ISO ``created_at``:
    "on 13 October 2023" gives ``2023-10-13``, "in July 2023" ``2023-07-__``, "in June"
    ``____-06-__``, "in 2023" ``2023-__-__``. English month names; relative dates ("last
    week") are not read."""
    if not _HINT.search(text):
        return []
    patterns = []
    for found in _DATE.finditer(text):
        parts = {k: v for k, v in found.groupdict().items() if v}
        if "iso" in parts:
            patterns.append(parts["iso"])
            continue
        month = next((v for k, v in parts.items() if k.startswith("m")), None)
        day = next((v for k, v in parts.items() if k.startswith("d")), None)
        year = next((v for k, v in parts.items() if k.startswith("y")), "____")
        patterns.append(
            f"{year}-{f'{_MONTH_NUMBER[month.lower()]:02d}' if month else '__'}-"
            f"{f'{int(day.rstrip(string.ascii_letters)):02d}' if day else '__'}")
    return list(dict.fromkeys(patterns))
