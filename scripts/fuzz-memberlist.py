"""Long fuzz campaign for the memberlist decoders (the bounded version runs in `make test`).

    .venv/bin/python scripts/fuzz-memberlist.py --count 200000 [--seed 1] [--target packet ...]

Each target gets `count` inputs: mutations of the Go frames captured in
tests/protocol/memberlist/vectors, and one in ten purely random byte strings. Any
exception other than `MemberlistError` is printed with its input and fails the run.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.protocol.memberlist.fuzzing import CORPUS, LZW_CORPUS, TARGETS, mutate

from tidings.protocol.memberlist.errors import MemberlistError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", action="append", choices=sorted(TARGETS))
    args = parser.parse_args()
    failures = 0
    for name in args.target or sorted(TARGETS):
        decode = TARGETS[name]
        corpus = LZW_CORPUS if name == "lzw" else CORPUS
        rng = random.Random(args.seed)
        refused = 0
        started = time.perf_counter()
        for i in range(args.count):
            if i % 10 == 9:
                data = rng.randbytes(rng.randint(0, 200))
            else:
                data = mutate(corpus[rng.randrange(len(corpus))], rng)
            try:
                decode(data)
            except MemberlistError:
                refused += 1
            except Exception:
                failures += 1
                print(f"{name}: input {data.hex()}", file=sys.stderr)
                traceback.print_exc()
        took = time.perf_counter() - started
        print(f"{name}: {args.count} inputs, {refused} refused cleanly, {took:.1f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
