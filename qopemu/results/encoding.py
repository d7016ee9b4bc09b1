"""The client's binary result format (protocol §5.2-5.4).

The client turns `simpleDType` (JSON text) and `shape` into an `.npy` header and loads the raw
`data` bytes behind it, so every result is described by a numpy dtype and an item shape:

- non-flat: dtype ``[["value", D, {"__tuple__": true, "items": S}]]`` (the shape part only when the
  item is an array), header shape ``[1]``. The one structured field is what ``fetch_all()["value"]``
  and ``save`` handles rely on.
- flat: dtype ``D``, header shape ``list(S)``, or ``[1]`` for scalar items.

D is the item's element dtype: ``<i8`` int, ``<f8`` fixed and every floating result, ``|b1`` bool,
``<i2`` raw ADC, ``<i8`` timestamps, or a list of ``[name, D(, shape)]`` fields for records. Both
variants describe the same bytes: items packed in C order, little-endian.
"""

from __future__ import annotations

import json
from typing import Union

import numpy as np

Descr = Union[str, list]


def _shape_hint(shape: tuple[int, ...]) -> dict:
    # The client's JSON hook turns this object into a Python tuple, which numpy reads as a sub-array shape.
    return {"__tuple__": True, "items": [int(s) for s in shape]}


def wire_dtype(dtype: np.dtype) -> np.dtype:
    """The same dtype with every number little-endian and records packed (no padding)."""
    if dtype.names is None:
        if dtype.subdtype is not None:
            base, shape = dtype.subdtype
            return np.dtype((wire_dtype(base), shape))
        return dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype
    return np.dtype([(name, wire_dtype(dtype.fields[name][0])) for name in dtype.names])


def descr(dtype: np.dtype) -> Descr:
    """The JSON form of an element dtype: a dtype string, or a list of fields."""
    dtype = wire_dtype(dtype)
    if dtype.names is None:
        return dtype.str
    fields: list = []
    for name in dtype.names:
        field = dtype.fields[name][0]
        if field.subdtype is not None:
            base, shape = field.subdtype
            fields.append([name, descr(base), _shape_hint(shape)])
        else:
            fields.append([name, descr(field)])
    return fields


def simple_dtype(dtype: np.dtype, item_shape: tuple[int, ...], flat: bool) -> str:
    """`simpleDType` for items of this element dtype and shape."""
    if flat:
        return json.dumps(descr(dtype))
    field = ["value", descr(dtype)]
    if item_shape:
        field.append(_shape_hint(item_shape))
    return json.dumps([field])


def wire_shape(item_shape: tuple[int, ...], flat: bool) -> list[int]:
    """The header `shape`: the client reads [1] as "one item per row"."""
    if flat and item_shape:
        return [int(s) for s in item_shape]
    return [1]


def to_bytes(items: np.ndarray) -> bytes:
    """Packed little-endian C-order bytes of a batch of items."""
    return np.ascontiguousarray(items, dtype=wire_dtype(items.dtype)).tobytes()
