"""The decoder child: limits itself, then reads stdin, decodes, writes stdout.

Exit 0 with the output on stdout; 2 (sandbox.REFUSED) with a reason on stderr when the
decoder rejects the bytes; 3 when it ran out of memory. A crash is the signal that killed it.
"""

from __future__ import annotations

import importlib
import resource
import sys


def main(argv: list[str]) -> int:
    target, cpu_seconds, memory_bytes = argv[0], int(argv[1]), int(argv[2])
    # The soft CPU limit sends SIGXCPU (default action: terminate); the hard one a second
    # later SIGKILL, for a decoder that handles the first.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    module, _, name = target.partition(":")
    decoder = getattr(importlib.import_module(module), name)
    data = sys.stdin.buffer.read()
    try:
        out = decoder(data)
    except MemoryError:
        return 3
    except Exception as exc:  # noqa: BLE001 - any refusal of the bytes is the input's fault
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
