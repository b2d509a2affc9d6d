"""Block Kit checks the fake applies where Slack does (messages and response URLs).

Slack refuses a message whose blocks break its limits with `invalid_blocks` and a list of
errors naming the JSON pointer; `block_errors` returns the same kind of list (empty: valid). Only
the block and element types a bot like membot sends are checked in depth; others pass as long
as they have a `type`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["block_errors"]

MAX_BLOCKS = 50  # per message
SECTION_TEXT = 3000
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ID_LENGTH = 255  # block_id, action_id


def block_errors(blocks: Any) -> list[str]:
    """What Slack would say is wrong with `blocks` (a message's `blocks` array)."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    action_ids: set[str] = set()
    for n, block in enumerate(blocks):
        where = f"/blocks/{n}"
        if not isinstance(block, dict) or not block.get("type"):
            errors.append(f"must provide a type [json-pointer:{where}]")
            continue
        errors += _unique_id(block, "block_id", block_ids, where)
        if block["type"] == "section":
            errors += _section(block, where)
        elif block["type"] == "actions":
            errors += _actions(block, where, action_ids)
    return errors


def _unique_id(item: dict[str, Any], key: str, seen: set[str], where: str) -> list[str]:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, str) or not 0 < len(value) <= ID_LENGTH:
        return [f"must be a string of 1 to {ID_LENGTH} characters [json-pointer:{where}/{key}]"]
    if value in seen:
        return [f"{key} must be unique within a message [json-pointer:{where}/{key}]"]
    seen.add(value)
    return []


def _text(obj: Any, where: str, limit: int, kinds: tuple[str, ...]) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"must be a text object of type {' or '.join(kinds)} [json-pointer:{where}]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be more than 0 characters [json-pointer:{where}/text]"]
    if len(text) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{where}/text]"]
    return []


def _section(block: dict[str, Any], where: str) -> list[str]:
    if "text" not in block and "fields" not in block:
        return [f"must provide either text or fields [json-pointer:{where}]"]
    if "text" in block:
        return _text(block["text"], f"{where}/text", SECTION_TEXT, ("mrkdwn", "plain_text"))
    return []


def _actions(block: dict[str, Any], where: str, action_ids: set[str]) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        return [f"must provide at least 1 element [json-pointer:{where}/elements]"]
    errors: list[str] = []
    if len(elements) > ACTIONS_ELEMENTS:
        errors.append(f"no more than {ACTIONS_ELEMENTS} items allowed "
                      f"[json-pointer:{where}/elements]")
    for n, element in enumerate(elements):
        at = f"{where}/elements/{n}"
        if not isinstance(element, dict) or element.get("type") != "button":
            continue  # selects and the like are not checked here
        errors += _text(element.get("text"), f"{at}/text", BUTTON_TEXT, ("plain_text",))
        errors += _unique_id(element, "action_id", action_ids, at)
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > BUTTON_VALUE):
            errors.append(f"must be less than {BUTTON_VALUE + 1} characters "
                          f"[json-pointer:{at}/value]")
        if "style" in element and element["style"] not in ("primary", "danger"):
            errors.append(f"must be one of primary, danger [json-pointer:{at}/style]")
    return errors
