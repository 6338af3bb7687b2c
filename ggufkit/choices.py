"""`Choice`: a closed set of names as a str Enum, for flags, stored settings, JSON and messages alike.

Members compare and hash equal to their value ("on" == Switch.ON), print as their value in f-strings
and JSON, and `parse` turns user text into a member or one clear BadInputError.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from ggufkit.errors import BadInputError, did_you_mean

C = TypeVar("C", bound="Choice")


class Choice(str, Enum):
    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls: type[C], value: object, what: str) -> C:
        """`value` as a member; BadInputError naming `what` (e.g. "--mmap") and the choices if it is none."""
        try:
            return cls(value)
        except ValueError:
            hint = did_you_mean(str(value), [m.value for m in cls], n=1)
            raise BadInputError(f"{what} must be one of {', '.join(cls)}, not {value!r}{hint}") from None
