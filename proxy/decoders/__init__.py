"""Decoders of formats libvips does not read, run on untrusted bytes outside the service.

What the child (child.py) and its parent (sandbox.py) agree on lives here: the child runs as
`__main__`, so a class defined in child.py would not be the one the decoders raise.
"""

# Exit statuses of the child besides 0 (a signal is a crash).
REFUSED, OUT_OF_MEMORY, ASKED_WRONG = 2, 3, 4


class AskedWrong(ValueError):
    """The bytes are fine; the request asks for something they do not hold (→ 400)."""
