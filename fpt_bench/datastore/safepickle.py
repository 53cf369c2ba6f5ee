"""Unpickling untrusted files (downloaded pickles): only plain data comes back.

A pickle can name any importable callable and call it; this unpickler admits only the builtin containers and
scalars (which need no lookup), ``set``/``frozenset``, ``bytearray`` of given bytes, what numpy needs to rebuild
arrays and scalars, and ``_codecs.encode`` restricted to latin-1 (how Python 3 writes bytes at protocol 2). Any
other global (``os.system``, ``builtins.eval``, a class from some module) is refused.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from fpt_bench.api.errors import CorruptFileError

_NUMPY = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}
_BUILTINS = {("builtins", n) for n in ("set", "frozenset", "complex")} | {
    ("__builtin__", n) for n in ("set", "frozenset", "complex")}  # Python 2 pickles
ALLOWED = _NUMPY | _BUILTINS


def _bytearray(source: bytes | str = b"", encoding: str | None = None) -> bytearray:
    """``bytearray`` as pickles use it (from bytes, or a str with its encoding); ``bytearray(n)`` -- n zero bytes,
    written to memory at once -- is refused: a few bytes of pickle could ask for gigabytes."""
    if isinstance(source, bytes | bytearray) and encoding is None:
        return bytearray(source)
    if isinstance(source, str) and encoding in ("latin1", "latin-1"):
        return bytearray(source, encoding)
    raise pickle.UnpicklingError(f"bytearray({type(source).__name__}, ...) is not plain data")


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not plain data")
    return text.encode("latin1")


class PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) in (("builtins", "bytearray"), ("__builtin__", "bytearray")):
            return _bytearray
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which is not plain data")
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core"):]
        elif module == "__builtin__":
            module = "builtins"
        return super().find_class(module, name)


def loads(data: bytes, where: str, encoding: str = "ASCII") -> Any:
    """Unpickle ``data`` (from ``where``, named in errors) admitting only plain data."""
    return load(io.BytesIO(data), where, encoding)


def load(handle: io.BufferedIOBase | io.BytesIO, where: str, encoding: str = "ASCII") -> Any:
    try:
        return PlainDataUnpickler(handle, encoding=encoding).load()
    except pickle.UnpicklingError as exc:
        if "not plain data" in str(exc):
            raise CorruptFileError(f"{where}: refusing to unpickle: {exc} (only plain data is accepted: "
                                   f"containers, strings, numbers, bytes, numpy arrays)") from None
        raise CorruptFileError(f"{where}: truncated or damaged pickle ({exc})") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as exc:
        raise CorruptFileError(f"{where}: truncated or damaged pickle ({type(exc).__name__}: {exc})") from None
