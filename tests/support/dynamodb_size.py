"""An item's size as DynamoDB counts it toward the 400 KB item limit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def attribute_size(value: Any) -> int:
    """An attribute value's size as DynamoDB counts it toward the 400 KB item limit (deserialized form)."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, Decimal | int):
        return len(str(abs(value)).replace(".", "").lstrip("0")) // 2 + 1
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, set):
        return sum(attribute_size(v) for v in value)
    if isinstance(value, list):
        return 3 + sum(1 + attribute_size(v) for v in value)
    if isinstance(value, dict):
        return 3 + sum(1 + len(k.encode()) + attribute_size(v) for k, v in value.items())
    raise TypeError(type(value))


def item_size(item: dict[str, Any]) -> int:
    """Attribute names plus values, as DynamoDB counts an item's size."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())
