"""Parameter roles: the vocabulary freeze policies speak.

Every parameter of an assembled model carries exactly one role. Backbones assign roles to their own
parameters (they know their modules); the harness assigns ``input`` and ``output`` to the layers it builds.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    INPUT = "input"
    OUTPUT = "output"
    ATTENTION = "attention"
    FEEDFORWARD = "feedforward"
    NORM = "norm"
    POSITION = "position"
    TOKEN_EMBEDDING = "token_embedding"
    RECURRENT = "recurrent"
    ADAPTER = "adapter"
    OTHER = "other"


# What the paper's frozen pretrained transformer trains: input and output layers, LayerNorms and positions.
FPT_ROLES: frozenset[Role] = frozenset({Role.INPUT, Role.OUTPUT, Role.NORM, Role.POSITION})
