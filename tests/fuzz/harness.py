"""What every fuzz target shares: a seed corpus, seed splicing, and the atheris run."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris


def spliced(one_input: Callable[[bytes], None], seeds: list[bytes]) -> Callable[[bytes], None]:
    """`one_input` on the input, then on the input spliced into a seed.

    The decoders are in C (msgspec), which libFuzzer cannot see: it keeps only
    inputs that reach new Python lines, so its corpus stays small. Splicing
    each input into a well-formed seed (which seed and where: its first two
    bytes) puts the random bytes deep inside real frames as well.
    """

    def both(data: bytes) -> None:
        one_input(data)
        if len(data) > 2 and seeds:
            seed = seeds[data[0] % len(seeds)]
            at = data[1] * (len(seed) + 1) // 256
            one_input(seed[:at] + data[2:] + seed[at:])

    return both


def run(one_input: Callable[[bytes], None], seeds: list[bytes]) -> None:
    """Fuzz `one_input` with libFuzzer's arguments from argv (e.g. `-runs=1000000`).

    The seeds are also written to a temporary corpus directory given to
    libFuzzer; corpus directories given on the command line are used too.
    Each run checks two inputs (see `spliced`).
    """
    with tempfile.TemporaryDirectory(prefix="tidings-fuzz-") as corpus:
        for index, seed in enumerate(seeds):
            (Path(corpus) / f"seed-{index}").write_bytes(seed)
        atheris.Setup([*sys.argv, "-len_control=0", corpus], spliced(one_input, seeds))
        atheris.Fuzz()
