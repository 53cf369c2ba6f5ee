"""Unpickling untrusted files (downloaded pickles): only plain data comes back.

A pickle can name any importable callable and call it; this unpickler admits only the builtin containers and
scalars (which need no lookup), ``set``/``frozenset``/``complex``, ``bytearray`` of given bytes, ``_codecs.encode``
restricted to latin-1 (how Python 3 writes bytes at protocol 2), and numpy arrays and scalars of plain numbers or
fixed-size strings. Any other global (``os.system``, ``builtins.eval``, a class from some module) is refused.

Numpy's own unpickling code never sees the pickle's data. A numpy pickle rebuilds a dtype and then calls its
``__setstate__`` with a state tuple that can rewrite the dtype's fields and flags -- enough to make an object
dtype look like plain bytes, so the array holds pointers forged by the file (a segfault, or worse, when used).
Here ``numpy.dtype``, ``_reconstruct``, ``scalar`` and ``_frombuffer`` are stand-ins: a dtype is rebuilt only from
a plain type string (``u1``, ``<f8``, ``U5``: no fields, no object or void type), the state may only say the
byte order (and the size the type string implies), and an array is built by ``np.frombuffer`` from exactly as
many bytes as its shape and dtype need (copied once, so it is writable). The stand-ins live in the unpickled
structure only until loading ends; then each is replaced by the array, scalar or dtype it stands for.

Before anything is unpickled, a pass over the opcodes (``fpt_bench.datastore.pickle_scan``) bounds what Python's
unpickler cannot be asked to bound: nesting (a key nested a million deep overflowed the C stack when hashed), memo
indices, the estimated memory of every object built, and dict/set insertions (colliding keys are quadratic).
Resources are bounded by the pickle's own size: the bytes that arrays, ``bytearray``, ``_codecs.encode`` and
``set``/``frozenset`` make may not exceed a small multiple of the input's size (a pickle can reuse one large
object many times at a few bytes each), and containers nest at most ``MAX_DEPTH`` deep.
"""

from __future__ import annotations

import io
import math
import pickle
import re
from typing import Any

import numpy as np

from fpt_bench.api.errors import CorruptFileError
from fpt_bench.datastore.pickle_scan import ScanRefused, scan

MAX_DEPTH = 100  # CIFAR batches and TAPE records nest 3 deep
MAX_HASHED = 10_000  # dict and set entries per pickle (CIFAR: 5); keys that all collide cost ~n^2: 10,000 take ~1 s
# objects the opcodes build, estimated before unpickling (fpt_bench.datastore.pickle_scan): a multiple of the size
_SCAN_FACTOR, _SCAN_SLACK = 8, 1 << 20
_SLACK = 1 << 16  # bytes every pickle may make beyond its own size (tiny pickles of a few empty arrays)
# an honest pickle makes each input byte into at most a few objects: at protocol 2, Python 3 writes an array's
# data as a str that ``_codecs.encode`` turns into bytes that the array then copies (2 copies of <= the input)
_FACTOR = 4
# a plain type string: bool, integers, floats, complex, fixed-size bytes and unicode (no byte order: it comes from
# the state, as numpy writes it; older numpy wrote it into the string)
_PLAIN_TYPE = re.compile(r"[<>|=]?(?:b1|\?|[iu][1248]|f[248]|c(?:8|16)|[SU][1-9][0-9]{0,5})")
_BYTE_ORDERS = ("<", ">", "|", "=")


class _Refused(pickle.UnpicklingError):
    """A construct that is not plain data (the message says which)."""


class _NDArrayClass:
    """What ``numpy.ndarray`` names in a pickle: only ever the first argument of ``_reconstruct``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _Refused("numpy.ndarray(...) called directly is not plain data")

    def __reduce__(self) -> Any:
        raise TypeError("not picklable")


_NDARRAY = _NDArrayClass()


class _Budget:
    """Bytes the unpickled objects may still make (see the module docstring)."""

    def __init__(self, size: int) -> None:
        self.left = _FACTOR * size + _SLACK

    def take(self, n: int, what: str) -> None:
        self.left -= n
        if self.left < 0:
            raise _Refused(f"{what} asks for more memory than the pickle's own size allows")


class _Stand:
    """A stand-in for a numpy object; ``value`` is the real object once it is known."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Any = None

    kind = "object"

    def resolved(self) -> Any:
        if self.value is None:
            raise _Refused(f"a numpy {self.kind} whose state was never set")
        return self.value

    def __setstate__(self, state: Any) -> None:
        raise _Refused(f"a numpy {self.kind} given a state it does not take")


class _DType(_Stand):
    """``numpy.dtype(type_string, align, copy)``; ``__setstate__`` may set the byte order only."""

    __slots__ = ("_state_set",)
    kind = "dtype"

    def __init__(self, spec: Any, align: Any = False, copy: Any = True) -> None:
        super().__init__()
        self._state_set = False
        if isinstance(spec, bytes):
            spec = spec.decode("latin-1")
        if not isinstance(spec, str) or not _PLAIN_TYPE.fullmatch(spec):
            raise _Refused(f"numpy dtype {spec!r} is not a plain number or string type (no object, void or "
                           f"structured types)")
        if align not in (False, 0) or not isinstance(copy, bool | int):
            raise _Refused("numpy dtype with alignment is not plain data")
        self.value = np.dtype(spec)

    def __setstate__(self, state: Any) -> None:
        if self._state_set:
            raise _Refused("a numpy dtype's state set twice")
        self._state_set = True
        if not isinstance(state, tuple) or len(state) not in (8, 9):
            raise _Refused("a numpy dtype state that is not numpy's (version, order, ..., flags) tuple")
        version, order, subdtype, names, fields, elsize, alignment, flags = state[:8]
        metadata = state[8] if len(state) == 9 else None
        if version not in (3, 4) or order not in _BYTE_ORDERS:
            raise _Refused(f"numpy dtype state version {version!r} / byte order {order!r}")
        if subdtype is not None or names is not None or fields is not None or metadata not in (None, {}):
            raise _Refused("a numpy dtype state with fields, a subarray or metadata (only plain types are data)")
        dtype = self.value
        if type(elsize) is not int or (elsize != -1 and elsize != dtype.itemsize):
            raise _Refused(f"numpy dtype {dtype.str}: state says {elsize!r} bytes per item")
        if type(alignment) is not int or type(flags) is not int:
            raise _Refused("a numpy dtype state with non-integer alignment or flags")
        if order in "<>" and dtype.byteorder != "|":  # the flags are numpy's business: they follow from the type
            self.value = dtype.newbyteorder(order)


def _dtype(spec: Any, align: Any = False, copy: Any = True) -> _DType:
    return _DType(spec, align, copy)


def _dtype_of(value: Any, what: str) -> np.dtype:
    if not isinstance(value, _DType):
        raise _Refused(f"{what} with a dtype that is not a plain numpy dtype ({type(value).__name__})")
    return value.resolved()


def _raw_bytes(raw: Any, what: str) -> bytes | bytearray | memoryview:
    if isinstance(raw, str):  # Python 2 pickles loaded with encoding="latin1"
        return raw.encode("latin-1")
    if isinstance(raw, bytes | bytearray):
        return raw
    if isinstance(raw, pickle.PickleBuffer):
        return raw.raw()
    raise _Refused(f"{what} whose data is {type(raw).__name__}, not bytes (object arrays are not plain data)")


def _shape_of(shape: Any, what: str) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple | list) or len(shape) > 32 or not all(
            type(n) is int and 0 <= n < 2**63 for n in shape):
        raise _Refused(f"{what} whose shape is not a tuple of at most 32 counts below 2**63")  # no repr: a
        # forged count may have millions of digits
    return tuple(shape)


class _Array(_Stand):
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')``; ``__setstate__`` builds the array."""

    __slots__ = ("_budget",)
    kind = "array"

    def __init__(self, budget: _Budget) -> None:
        super().__init__()
        self._budget = budget

    def __setstate__(self, state: Any) -> None:
        if self.value is not None:
            raise _Refused("a numpy array's state set twice")
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("a numpy array state that is not numpy's (version, shape, dtype, fortran, data) tuple")
        if len(state) == 5:
            if state[0] != 1:
                raise _Refused(f"numpy array state version {state[0]!r}")
            state = state[1:]
        shape, dtype, fortran, raw = state
        if not isinstance(fortran, bool | int):
            raise _Refused("a numpy array state whose order flag is not a bool")
        self.value = _build_array(raw, _dtype_of(dtype, "a numpy array"), _shape_of(shape, "a numpy array"),
                                  "F" if fortran else "C", self._budget)


def _build_array(raw: Any, dtype: np.dtype, shape: tuple[int, ...], order: str, budget: _Budget) -> np.ndarray:
    data = _raw_bytes(raw, "a numpy array")
    need = math.prod(shape) * dtype.itemsize  # exact (Python integers): a forged shape cannot wrap around
    size = memoryview(data).nbytes
    if size != need:
        raise _Refused(f"a numpy array of shape {shape} and dtype {dtype.str} needs {need} bytes, the pickle "
                       f"holds {size}")
    budget.take(need, f"a numpy array of {need} bytes")
    flat = np.frombuffer(data, dtype=dtype) if need else np.empty(0, dtype=dtype)
    return flat.reshape(shape, order=order).copy(order="K")  # owns its memory, writable


class _Scalar(_Stand):
    __slots__ = ()
    kind = "scalar"


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()``: how protocols 0-2 write an empty bytes object (others go through ``_codecs.encode``)."""
    if args:
        raise _Refused("bytes(...) with arguments is not plain data")
    return b""


def _complex(real: Any = 0, imag: Any = 0) -> complex:
    if not all(isinstance(x, int | float) for x in (real, imag)):
        raise _Refused("complex() of anything but numbers is not plain data")
    return complex(real, imag)


class _Unpickler(pickle.Unpickler):
    def __init__(self, handle: io.BytesIO, encoding: str, size: int) -> None:
        super().__init__(handle, encoding=encoding)
        self.budget = _Budget(size)

    _GLOBALS = {  # (module, name) -> the stand-in's attribute; __builtin__: Python 2 pickles
        ("_codecs", "encode"): "_latin1_encode", ("numpy", "dtype"): "_dtype", ("numpy", "ndarray"): "_ndarray",
        ("numpy._core.multiarray", "_reconstruct"): "_reconstruct", ("numpy._core.multiarray", "scalar"): "_scalar",
        ("numpy._core.numeric", "_frombuffer"): "_frombuffer",
        **{(module, name): attribute for module in ("builtins", "__builtin__") for name, attribute in (
            ("set", "_set"), ("frozenset", "_frozenset"), ("complex", "_complex"), ("bytearray", "_bytearray"),
            ("bytes", "_empty_bytes"))},
    }
    _dtype = staticmethod(_dtype)
    _ndarray = _NDARRAY

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core"):]
        attribute = self._GLOBALS.get((module, name))
        if attribute is None:
            raise _Refused(f"it refers to {module}.{name}, which is not plain data")
        return getattr(self, attribute)

    # every stand-in is a function (not a type), so the NEWOBJ opcode, which calls cls.__new__, refuses it
    def _reconstruct(self, cls: Any, shape: Any = (0,), typecode: Any = b"b") -> _Array:
        if cls is not _NDARRAY or typecode not in (b"b", "b"):
            raise _Refused("numpy _reconstruct of anything but a plain ndarray is not plain data")
        return _Array(self.budget)

    def _scalar(self, dtype: Any, raw: Any = None) -> _Scalar:
        kind = _dtype_of(dtype, "a numpy scalar")
        data = _raw_bytes(raw, "a numpy scalar")
        if memoryview(data).nbytes != kind.itemsize:
            raise _Refused(f"a numpy {kind.str} scalar of {memoryview(data).nbytes} bytes")
        self.budget.take(kind.itemsize, "a numpy scalar")
        stand = _Scalar()
        stand.value = np.frombuffer(data, dtype=kind)[0].copy()
        return stand

    def _frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any) -> _Array:
        if order not in ("C", "F"):
            raise _Refused(f"numpy _frombuffer with order {order!r}")
        stand = _Array(self.budget)
        stand.value = _build_array(buf, _dtype_of(dtype, "a numpy array"), _shape_of(shape, "a numpy array"),
                                   order, self.budget)
        return stand

    def _latin1_encode(self, text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
        if encoding not in ("latin1", "latin-1") or not isinstance(text, str) or errors != "strict":
            raise _Refused(f"_codecs.encode with encoding {encoding!r} is not plain data")
        self.budget.take(len(text), "_codecs.encode")
        return text.encode("latin1")

    def _bytearray(self, source: Any = b"", encoding: Any = None) -> bytearray:
        """``bytearray`` as pickles use it (from bytes, or a str with its encoding); ``bytearray(n)`` -- n zero
        bytes, written to memory at once -- is refused: a few bytes of pickle could ask for gigabytes."""
        if isinstance(source, bytes | bytearray) and encoding is None:
            self.budget.take(len(source), "bytearray")
            return bytearray(source)
        if isinstance(source, str) and encoding in ("latin1", "latin-1"):
            self.budget.take(len(source), "bytearray")
            return bytearray(source, encoding)
        raise _Refused(f"bytearray({type(source).__name__}, ...) is not plain data")

    _complex = staticmethod(_complex)
    _empty_bytes = staticmethod(_empty_bytes)

    def _set(self, items: Any = ()) -> set[Any]:
        return set(self._items(items, "set"))

    def _frozenset(self, items: Any = ()) -> frozenset[Any]:
        return frozenset(self._items(items, "frozenset"))

    def _items(self, items: Any, what: str) -> list[Any] | tuple[Any, ...]:
        if not isinstance(items, list | tuple):
            raise _Refused(f"{what}({type(items).__name__}) is not plain data")
        if any(isinstance(item, _Stand) for item in items):
            raise _Refused(f"a numpy object inside a {what}")
        self.budget.take(8 * len(items), what)
        return items


# ----------------------------------------------------------------------------------------- resolving
_LEAF_TYPES = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray})
_CONTAINERS = frozenset({list, dict, tuple, set, frozenset})
def _resolve(value: Any, depth: int, done: dict[int, Any]) -> Any:
    """``value`` with every stand-in replaced by its numpy object (containers changed in place where mutable,
    rebuilt where not); refuses anything else that is not data, and nesting deeper than ``MAX_DEPTH``.
    Leaves are tested by exact type (the unpickler makes no subclasses), which keeps big label lists cheap."""
    kind = type(value)
    if kind in _LEAF_TYPES:
        return value
    if isinstance(value, _Stand):
        return value.resolved()
    if kind not in _CONTAINERS:
        # a bare reference (``numpy.dtype`` itself, ``set`` never called): a callable is not data
        raise _Refused(f"a reference to {getattr(value, '__qualname__', kind.__name__)} in place of data")
    key = id(value)
    if key in done:
        return done[key]
    if depth > MAX_DEPTH:
        raise _Refused(f"containers nested more than {MAX_DEPTH} deep")
    done[key] = value  # a cycle back to this container sees it as it is
    if kind is list:
        for i, item in enumerate(value):
            if type(item) not in _LEAF_TYPES:
                value[i] = _resolve(item, depth + 1, done)
        return value
    if kind is dict:
        for k, item in list(value.items()):
            if type(k) not in _LEAF_TYPES and _resolve(k, depth + 1, done) is not k:
                raise _Refused("a numpy array or scalar in a dict key")
            if type(item) not in _LEAF_TYPES:
                value[k] = _resolve(item, depth + 1, done)
        return value
    if all(type(item) in _LEAF_TYPES for item in value):
        return value
    items = [_resolve(item, depth + 1, done) for item in value]
    if all(a is b for a, b in zip(items, value, strict=True)):
        return value
    rebuilt = kind(items)
    done[key] = rebuilt
    return rebuilt


def loads(data: bytes, where: str, encoding: str = "ASCII") -> Any:
    """Unpickle ``data`` (from ``where``, named in errors) admitting only plain data."""
    try:
        scan(data, MAX_DEPTH, _SCAN_FACTOR * len(data) + _SCAN_SLACK, MAX_HASHED)
        value = _Unpickler(io.BytesIO(data), encoding, len(data)).load()
        return _resolve(value, 0, {})
    except (_Refused, ScanRefused) as exc:
        raise CorruptFileError(f"{where}: refusing to unpickle: {exc} (only plain data is accepted: containers, "
                               f"strings, numbers, bytes, numpy arrays of numbers)") from None
    except pickle.UnpicklingError as exc:
        raise CorruptFileError(f"{where}: truncated or damaged pickle ({exc})") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError, OverflowError,
            RecursionError, UnicodeError, SystemError) as exc:
        raise CorruptFileError(f"{where}: truncated or damaged pickle ({type(exc).__name__}: {exc})") from None


def load(handle: io.BufferedIOBase | io.BytesIO, where: str, encoding: str = "ASCII") -> Any:
    """Unpickle the rest of ``handle`` (see ``loads``)."""
    return loads(handle.read(), where, encoding)
