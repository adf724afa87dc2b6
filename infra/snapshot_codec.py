"""Exact binary codec for actor snapshots: msgpack with extension types.

What round-trips exactly (value *and* type): ``dict`` (insertion order kept; str/int/... keys), ``list``,
``tuple``, ``str``, ``bytes``, ``int`` (any size), ``float`` (every bit, NaN and -0.0 included), ``bool``,
``None``, ``Decimal`` (as its string: exponent, sign, NaN and infinities kept), numpy arrays (dtype string
with byte order, shape and raw C-order bytes; decoded arrays are writable copies) and numpy scalars.
Anything else -- subclasses included (``OrderedDict``, enums) -- is refused with ``TypeError`` rather than
silently turned into something close. msgpack ships with Ray (a hard dependency of it).

Format: ``MAGIC`` (4 bytes, the codec version) + one msgpack object.

A stored snapshot (a *blob*) wraps an encoded payload: ``BLOB_MAGIC``, one line of JSON header
(``version``, ``created_ns``, ``sha256`` and ``size`` of the payload, ``encoding``), then the payload.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import msgpack
import numpy as np

MAGIC = b"ALC\x01"
EXT_DECIMAL, EXT_NDARRAY, EXT_NPSCALAR, EXT_TUPLE, EXT_BIGINT = 1, 2, 3, 4, 5
_ARRAY_KINDS = frozenset("biufcmMSU")  # no object (pickles, pointers) and no structured (void) dtypes


BLOB_MAGIC = b"ALSNAP1\n"
ENCODINGS = ("bytes", "codec")  # payload given as bytes (stored as is) | a dict (encoded by this codec)
_SHA = re.compile(r"[0-9a-f]{64}")


class CodecError(ValueError):
    """The bytes are not a payload this codec wrote (bad magic, truncated, unknown extension, bad array)."""


def encode(obj: Any) -> bytes:
    """``obj`` as bytes; ``TypeError`` on a type the codec does not round-trip exactly."""
    return MAGIC + _pack(obj)


def decode(data: bytes) -> Any:
    """The object ``encode`` was given; ``CodecError`` on anything else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[: len(MAGIC)] != MAGIC:
        raise CodecError(f"bad magic {data[:len(MAGIC)]!r}, expected {MAGIC!r}")
    try:
        return _unpack(data[len(MAGIC):])
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises ValueError, FormatError, StackError, ExtraData, TypeError, ...
        raise CodecError(f"{type(exc).__name__}: {exc}") from exc


class BlobError(ValueError):
    """A stored snapshot that cannot be used; the message is the reason (``truncated: ...``, ``corrupt: ...``)."""


def pack_blob(payload: bytes | dict[str, Any], version: int, created_ns: int) -> tuple[bytes, dict[str, Any]]:
    """(blob, header) for a payload: bytes are stored as they are, a dict is encoded."""
    if isinstance(payload, bytes | bytearray | memoryview):
        data, encoding = bytes(payload), "bytes"
    elif type(payload) is dict:
        data, encoding = encode(payload), "codec"
    else:
        raise TypeError(f"payload must be bytes or dict, got {type(payload).__name__}")
    head = {"version": version, "created_ns": created_ns, "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data), "encoding": encoding}
    return BLOB_MAGIC + json.dumps(head, sort_keys=True).encode() + b"\n" + data, head


def unpack_blob(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, payload bytes) of a blob whose size and checksum hold; ``BlobError`` otherwise."""
    if not blob.startswith(BLOB_MAGIC):
        raise BlobError("undecodable: bad magic")
    line, sep, data = blob[len(BLOB_MAGIC):].partition(b"\n")
    try:
        head = json.loads(line) if sep else None
    except ValueError:
        head = None
    ints = ("version", "created_ns", "size")
    if not (isinstance(head, dict) and all(type(head.get(k)) is int and head[k] >= 0 for k in ints)
            and isinstance(head.get("sha256"), str) and _SHA.fullmatch(head["sha256"])
            and head.get("encoding") in ENCODINGS):
        raise BlobError("undecodable: bad header")
    if len(data) < head["size"]:
        raise BlobError(f"truncated: {len(data)} of {head['size']} payload bytes")
    if len(data) > head["size"] or hashlib.sha256(data).hexdigest() != head["sha256"]:
        raise BlobError("corrupt: checksum mismatch")
    return head, data


def _pack(obj: Any) -> bytes:
    out = msgpack.packb(obj, default=_default, strict_types=True, use_bin_type=True)
    assert isinstance(out, bytes)
    return out


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext_hook, use_list=True)


def _default(obj: Any) -> msgpack.ExtType:
    """Called by msgpack for every value it does not pack natively (strict types: subclasses land here)."""
    kind = type(obj)
    if kind is Decimal:
        return msgpack.ExtType(EXT_DECIMAL, str(obj).encode("ascii"))
    if kind is int:  # beyond 64 bits
        return msgpack.ExtType(EXT_BIGINT, str(obj).encode("ascii"))
    if kind is tuple:
        return msgpack.ExtType(EXT_TUPLE, _pack(list(obj)))
    if kind is np.ndarray:
        return msgpack.ExtType(EXT_NDARRAY, _pack_array(obj))
    if isinstance(obj, np.generic):
        return msgpack.ExtType(EXT_NPSCALAR, _pack_array(np.asarray(obj)))
    raise TypeError(f"snapshot codec cannot encode {kind.__module__}.{kind.__qualname__} exactly; "
                    "convert it to dict/list/str/int/float/bool/None/Decimal/numpy first")


def _pack_array(a: np.ndarray) -> bytes:
    if a.dtype.kind not in _ARRAY_KINDS or a.dtype.fields is not None or a.dtype.itemsize == 0:
        raise TypeError(f"snapshot codec refuses numpy dtype {a.dtype!r} (object, structured or empty)")
    return _pack([a.dtype.str, list(a.shape), a.tobytes(order="C")])


def _unpack_array(data: bytes) -> np.ndarray:
    parts = _unpack(data)
    if not (isinstance(parts, list) and len(parts) == 3 and isinstance(parts[0], str)
            and isinstance(parts[1], list) and isinstance(parts[2], bytes)):
        raise CodecError("malformed array")
    dtype_str, shape, raw = parts
    dtype = np.dtype(dtype_str)
    if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None:
        raise CodecError(f"refused array dtype {dtype_str!r}")
    if not all(type(n) is int and n >= 0 for n in shape):
        raise CodecError(f"bad array shape {shape!r}")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if len(raw) != count * dtype.itemsize:
        raise CodecError(f"array of {dtype_str} {tuple(shape)} needs {count * dtype.itemsize} bytes, got {len(raw)}")
    return np.frombuffer(bytearray(raw), dtype=dtype, count=count).reshape(shape)  # writable, owns a copy


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_DECIMAL:
        try:
            return Decimal(data.decode("ascii"))
        except (InvalidOperation, UnicodeDecodeError) as exc:
            raise CodecError(f"bad Decimal {data!r}") from exc
    if code == EXT_BIGINT:
        return int(data.decode("ascii"))
    if code == EXT_TUPLE:
        items = _unpack(data)
        if not isinstance(items, list):
            raise CodecError("malformed tuple")
        return tuple(items)
    if code == EXT_NDARRAY:
        return _unpack_array(data)
    if code == EXT_NPSCALAR:
        arr = _unpack_array(data)
        if arr.shape != ():
            raise CodecError("numpy scalar with a shape")
        return arr[()]
    raise CodecError(f"unknown extension type {code}")
