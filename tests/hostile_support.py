"""Hand-assembled hostile pickles (numpy-shaped ones a plain ``pickle.dumps`` cannot write) for the reliability
tests: each builder returns the bytes of one pickle, protocol 3 opcodes spelled out."""

from __future__ import annotations

import struct

STOP, MARK, TUPLE, REDUCE, BUILD = b".", b"(", b"t", b"R", b"b"
TUPLE1, TUPLE2, TUPLE3, EMPTY_TUPLE = b"\x85", b"\x86", b"\x87", b")"
NONE, TRUE, FALSE = b"N", b"\x88", b"\x89"
EMPTY_LIST, APPEND, APPENDS, EMPTY_DICT, SETITEM = b"]", b"a", b"e", b"}", b"s"
PROTO3 = b"\x80\x03"


def glob(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def data(value: bytes) -> bytes:
    return (b"C" + bytes([len(value)]) if len(value) < 256 else b"B" + struct.pack("<I", len(value))) + value


def integer(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def put(slot: int) -> bytes:
    return b"r" + struct.pack("<I", slot)


def get(slot: int) -> bytes:
    return b"j" + struct.pack("<I", slot)


def dtype(code: str, state: bytes | None = None) -> bytes:
    """``numpy.dtype(code, False, True)`` followed by BUILD with ``state`` (numpy's default state if None)."""
    if state is None:
        state = dtype_state()
    return glob("numpy", "dtype") + text(code) + FALSE + TRUE + TUPLE3 + REDUCE + state + BUILD


def dtype_state(order: str = "|", names: bytes = NONE, fields: bytes = NONE, elsize: int = -1, flags: int = 0,
                subdtype: bytes = NONE) -> bytes:
    """numpy's dtype state tuple (version 3, order, subdtype, names, fields, elsize, alignment, flags)."""
    return (MARK + integer(3) + text(order) + subdtype + names + fields + integer(elsize) + integer(-1)
            + integer(flags) + TUPLE)


def array(dtype_pickle: bytes, shape: tuple[int, ...], raw: bytes, reconstruct: str = "numpy.core.multiarray"
          ) -> bytes:
    """``_reconstruct(ndarray, (0,), b'b')`` followed by BUILD with (1, shape, dtype, False, raw)."""
    shape_pickle = MARK + b"".join(integer(n) for n in shape) + TUPLE
    return (glob(reconstruct, "_reconstruct") + glob("numpy", "ndarray") + integer(0) + TUPLE1 + data(b"b")
            + TUPLE3 + REDUCE + MARK + integer(1) + shape_pickle + dtype_pickle + FALSE + raw + TUPLE + BUILD)


def in_dict(value: bytes, key: str = "data", labels: bool = True) -> bytes:
    """``{key: value, 'labels': [0]}`` (a CIFAR-shaped dict), whole pickle."""
    body = EMPTY_DICT + text(key) + value + SETITEM
    if labels:
        body += text("labels") + EMPTY_LIST + integer(0) + APPEND + SETITEM
    return PROTO3 + body + STOP


def forged_object_array(pointer: int = 0x4141414141414141) -> bytes:
    """The issue's segfault: an object dtype whose state clears its flags (numpy then treats the array's data as
    plain bytes, so the raw bytes become object pointers) -- live under a plain unpickler."""
    return in_dict(array(dtype("O8", dtype_state(flags=0)), (1,), data(struct.pack("<Q", pointer))))


def hostile_numpy_pickles() -> dict[str, bytes]:
    """Numpy-shaped pickles the restricted unpickler must refuse (none of them may crash the process)."""
    pointer = data(struct.pack("<Q", 0x4141414141414141))
    big = data(b"\x00" * (1 << 20))
    reused = (EMPTY_LIST + big + put(0) + APPEND
              + MARK + b"".join(array(dtype("u1"), (1 << 20,), get(0)) for _ in range(300)) + APPENDS)
    nested = EMPTY_LIST + EMPTY_LIST * 5000 + APPEND * 5000
    list_of_ints = EMPTY_LIST + MARK + integer(1) * 20000 + APPENDS + put(0)
    sets = list_of_ints + EMPTY_LIST + MARK + (glob("builtins", "set") + get(0) + TUPLE1 + REDUCE) * 2000 + APPENDS
    encoded = (text("x" * (1 << 20)) + put(0) + EMPTY_LIST + MARK
               + (glob("_codecs", "encode") + get(0) + text("latin1") + TUPLE2 + REDUCE) * 300 + APPENDS)
    return {
        "object dtype with its flags cleared (the issue's)": forged_object_array(),
        "object dtype with a list of objects": in_dict(array(dtype("O8", dtype_state(flags=63)), (1,),
                                                             EMPTY_LIST + glob("os", "getcwd") + APPEND)),
        "void dtype with an object field": in_dict(array(dtype("V8", dtype_state(
            names=text("f") + TUPLE1, fields=EMPTY_DICT + text("f") + dtype("O8") + integer(0) + TUPLE2
            + SETITEM, elsize=8, flags=0)), (1,), pointer)),
        "dtype whose state claims 8-byte items of u1": in_dict(array(dtype("u1", dtype_state(elsize=8)), (1,),
                                                                       pointer)),
        "dtype with a subarray": in_dict(array(dtype("u1", dtype_state(subdtype=dtype("O8") + MARK + integer(2)
                                                                               + TUPLE + TUPLE2)), (1,), pointer)),
        "array shape asking for more bytes than it holds": in_dict(array(dtype("u1"), (2**40,), pointer)),
        "array shape that wraps int64": in_dict(array(dtype("f8"), (2**62, 4), pointer)),
        "numpy.ndarray called with a buffer": in_dict(glob("numpy", "ndarray") + MARK + MARK + integer(2**40)
                                                      + TUPLE + text("u1") + pointer + TUPLE + REDUCE),
        "numpy scalar of the object dtype": in_dict(glob("numpy.core.multiarray", "scalar") + dtype("O8")
                                                    + pointer + TUPLE2 + REDUCE),
        "one megabyte reused by 300 arrays": in_dict(reused),
        "_codecs.encode of one string 300 times": in_dict(encoded),
        "set() of one list 2000 times": in_dict(sets),
        "lists nested 5000 deep": in_dict(nested),
        "array state set twice": in_dict(array(dtype("u1"), (1,), data(b"\x01")) + MARK + integer(1) + MARK
                                         + integer(8) + TUPLE + dtype("u1") + FALSE + pointer + TUPLE + BUILD),
    }
