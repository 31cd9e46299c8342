"""The decoder child: limits itself, then reads stdin, decodes, writes stdout.

argv: the decoder ("module:function"), the CPU seconds, the memory bytes, and the decoder's
keyword arguments as JSON. The decoder returns bytes, or (facts, bytes) with facts a dict.
stdout is one line of JSON (the facts), then the bytes.

Exit 0 on success; 2 (REFUSED) with a reason on stderr when the decoder rejects the bytes;
3 when it ran out of memory; 4 (ASKED_WRONG) when the request names what the file does not
have (a page past the end). A crash is the signal that killed it.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys

from proxy.decoders import ASKED_WRONG, OUT_OF_MEMORY, REFUSED, AskedWrong


def main(argv: list[str]) -> int:
    target, cpu_seconds, memory_bytes = argv[0], int(argv[1]), int(argv[2])
    options = json.loads(argv[3]) if len(argv) > 3 else {}
    # The soft CPU limit sends SIGXCPU (default action: terminate); the hard one a second
    # later SIGKILL, for a decoder that handles the first.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    module, _, name = target.partition(":")
    decoder = getattr(importlib.import_module(module), name)
    data = sys.stdin.buffer.read()
    try:
        out = decoder(data, **options)
    except MemoryError:
        return OUT_OF_MEMORY
    except AskedWrong as exc:
        print(str(exc), file=sys.stderr)
        return ASKED_WRONG
    except Exception as exc:  # noqa: BLE001 - any refusal of the bytes is the input's fault
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return REFUSED
    facts, body = out if isinstance(out, tuple) else ({}, out)
    sys.stdout.buffer.write(json.dumps(facts).encode() + b"\n")
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
