"""A pass over a pickle's opcodes before anything is unpickled: limits that Python's unpickler cannot be asked for.

Python's C unpickler is fast and correct, but a hostile stream can make it:

- recurse until the stack overflows (a key that is a tuple nested a million deep is hashed recursively when the
  dict is built: a segfault, no exception) -- every object's nesting depth is tracked here and bounded;
- allocate a memo table as large as an index the stream names (``LONG_BINPUT 2**30``: gigabytes from ten bytes) --
  a memo index must be one the stream could have filled (below the number of opcodes read so far);
- make many large objects from single bytes (``EMPTY_DICT`` a million times is 70 MB from 1 MB) -- the memory each
  opcode's result takes is estimated and bounded by a multiple of the pickle's size;
- build a dict or set whose keys all collide (quadratic: a 600 KB pickle took 45 s) -- the number of dict and set
  insertions is bounded.

The pass reads opcodes with ``pickletools.genops``, which parses arguments without building objects; a large byte
string is one opcode. Its cost is linear in the number of opcodes (CIFAR batch: a few dozen; a TAPE record: tens).
"""

from __future__ import annotations

import pickletools
from typing import Any

# bytes an object takes, roughly (CPython, 64-bit): a reference in a container, an empty container, a number
_REF, _CONTAINER, _NUMBER, _STR = 16, 72, 32, 56
_CONTAINER_OPS = frozenset({"EMPTY_DICT", "EMPTY_LIST", "EMPTY_SET", "DICT", "LIST", "TUPLE", "TUPLE1", "TUPLE2",
                            "TUPLE3", "FROZENSET", "EMPTY_TUPLE"})
_IN_PLACE = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"})  # change the object below
_HASHED = {"SETITEM": 1, "DICT": 0, "SETITEMS": 0, "ADDITEMS": 0, "FROZENSET": 0}  # 0: counted from the slice
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})


class ScanRefused(Exception):
    """The stream goes beyond a limit (the message says which)."""


def _cost(name: str, arg: Any, pushed_items: int) -> int:
    if name in _CONTAINER_OPS:
        return _CONTAINER + _REF * pushed_items
    if isinstance(arg, bytes | str | bytearray):
        return _STR + len(arg)
    if isinstance(arg, int | float) and not isinstance(arg, bool):
        return _NUMBER + (arg.bit_length() // 8 if isinstance(arg, int) else 0)
    return _REF


def scan(data: bytes, max_depth: int, budget: int, max_hashed: int) -> None:
    """Refuse ``data`` (a ScanRefused) when an object would nest deeper than ``max_depth``, the estimated memory of
    what it builds exceeds ``budget`` bytes, dicts and sets would take more than ``max_hashed`` insertions, or a
    memo index is out of reach. Damage the unpickler would report anyway (a bad opcode) is left to it."""
    stack: list[int] = []  # the nesting depth of each stack item
    marks: list[int] = []
    memo: dict[int, int] = {}
    spent = hashed = 0
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(data)):
            name = op.name
            if name in ("PROTO", "FRAME", "STOP"):
                continue
            if name == "MARK":
                marks.append(len(stack))
                continue
            popped: list[int] = []
            below: int | None = None
            before = op.stack_before
            if pickletools.markobject in before:
                start = marks.pop() if marks else 0
                popped, stack[start:] = stack[start:], []
                if before and before[0] is not pickletools.markobject and name in _IN_PLACE:
                    below = stack.pop() if stack else 0
            elif name == "DUP":  # a second reference to the top object, no deeper
                stack.append(stack[-1] if stack else 0)
                spent += _REF
                continue
            elif name in _MEMO_GET:
                if arg not in memo:
                    raise ScanRefused(f"memo entry {arg} is read before it is written")
                stack.append(memo[arg])
                spent += _REF
                continue
            else:
                n = len(before)
                if name in _IN_PLACE and n:
                    popped = stack[len(stack) - n + 1:] if n > 1 else []
                    del stack[len(stack) - n + 1:]
                    below = stack.pop() if stack else 0
                elif n:
                    popped, stack[len(stack) - n:] = stack[len(stack) - n:], []
            if name in _MEMO_PUT or name == "MEMOIZE":
                index = len(memo) if name == "MEMOIZE" else arg
                if not isinstance(index, int) or index > count:
                    raise ScanRefused(f"memo index {index} beyond what {count} opcodes could have stored")
                memo[index] = stack[-1] if stack else 0
                continue
            if name in _HASHED:
                hashed += _HASHED[name] or len(popped) // (2 if name in ("DICT", "SETITEMS") else 1)
                if hashed > max_hashed:
                    raise ScanRefused(f"more than {max_hashed} dict or set entries")
            depth = max(popped, default=-1) + 1
            if below is not None:
                depth = max(below, depth)
            if depth > max_depth:
                raise ScanRefused(f"containers nested more than {max_depth} deep")
            pushes = len(op.stack_after)
            stack.extend([depth] * pushes)
            if below is not None:  # items added to a container: a reference each (a key and a value for a dict)
                spent += _REF * max(1, len(popped))
            elif pushes:
                spent += _cost(name, arg, len(popped))
            if spent > budget:
                raise ScanRefused(f"it would build more than {budget:,} bytes of objects from {len(data):,} bytes")
    except ValueError:
        return  # a damaged stream: the unpickler reports it in its own words
