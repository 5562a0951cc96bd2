"""Variables the ``workbench`` command sets for itself and its Python children (the worker), never for a program it
measures (``exec``'s java, doctor's and tune's children get the environment the user gave)."""

from __future__ import annotations

import os

# pydantic looks for plugins in every installed distribution's entry points when it builds its first model: 40-60 ms
# of each start (the CLI's and the worker's); the workbench's models are not for plugins to instrument.
_OWN = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}
_set_here: set[str] = set()  # the ones this process set (a variable the user set is theirs, and inherited)


def set_own_variables() -> None:
    """Sets each variable the user has not set; called before the first model is built."""
    for key, value in _OWN.items():
        if key not in os.environ:
            os.environ[key] = value
            _set_here.add(key)


def set_here() -> frozenset[str]:
    """The variables this process set for itself: a measured program's environment leaves them out."""
    return frozenset(_set_here)
