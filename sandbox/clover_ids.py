"""Clover-shaped identifiers: 13 upper-case letters and digits, reproducible."""

from __future__ import annotations

import random
import string

_ALPHABET = string.ascii_uppercase + string.digits
ID_LENGTH = 13


class CloverIds:
    """Makes ids from a seed, so one seed gives the same ids on every run."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)  # noqa: S311 - ids, not secrets
        self._issued: set[str] = set()

    def new(self) -> str:
        """An id this generator has not made before."""
        while True:
            made = "".join(self._random.choices(_ALPHABET, k=ID_LENGTH))
            if made not in self._issued:
                self._issued.add(made)
                return made
