"""Mem0's extraction call, with its answer checked.

Mem0 asks the model for a JSON object ``{"memory": [...]}`` and, when the answer does not parse,
logs it and carries on as if nothing was worth remembering: the messages leave the inbox as
learned and are lost. Small local models produce such answers often (prose around the JSON, a
cut-off object, another key). :class:`CheckedExtraction` stands between Mem0 and the model and
raises :class:`ExtractionUnparseable` instead, which Mem0 passes on (it re-raises model errors),
so the write is retried and, if it keeps failing, kept as failed and visible
(:class:`bot.learner.Learner`).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["CheckedExtraction", "ExtractionUnparseable", "parse_extraction"]

_FENCED = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)


class ExtractionUnparseable(Exception):
    """The extraction model answered with something other than the JSON object it was asked
    for. Trying again may work: models answer differently each time."""


def parse_extraction(answer: object) -> list[Any]:
    """The ``memory`` list of an extraction answer, read the way Mem0 reads it (the object
    itself, inside a code fence, or from its first ``{`` to its last ``}``). An empty list is a
    valid answer ("nothing to remember"). Raises :class:`ExtractionUnparseable` when no JSON
    object with a ``memory`` list can be read."""
    if not isinstance(answer, str) or not answer.strip():
        raise ExtractionUnparseable("the extraction model gave an empty answer")
    text = answer.strip()
    fenced = _FENCED.search(text)
    candidates = [fenced.group(1)] if fenced else []
    candidates.append(text)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            found = json.loads(candidate, strict=False)
        except ValueError:
            continue
        if isinstance(found, dict) and isinstance(found.get("memory"), list):
            return list(found["memory"])
    raise ExtractionUnparseable(
        "the extraction model's answer is not a JSON object with a 'memory' list")


class CheckedExtraction:
    """Mem0's LLM with every JSON answer checked by :func:`parse_extraction` before Mem0 reads
    it; anything else is Mem0's LLM unchanged."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.config = inner.config

    def generate_response(self, messages: list[dict[str, Any]], response_format: Any = None,
                          **kwargs: Any) -> Any:
        answer = self._inner.generate_response(messages=messages,
                                               response_format=response_format, **kwargs)
        if isinstance(response_format, dict) and response_format.get("type") == "json_object":
            parse_extraction(answer)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
