"""Fuzz targets, one per decoder of input from outside (atheris / libFuzzer).

Each `fuzz_<decoder>.py` runs as a script from the repository root::

    .venv/bin/python -m tests.fuzz.fuzz_json_codec -runs=1000000

Targets: `fuzz_json_codec` (JSON commands), `fuzz_protobuf_codec` (protobuf
commands), `fuzz_uni_codec` (the unidirectional connect request),
`fuzz_payload` (`data`/`info` payloads) and `fuzz_token_claims` (JWT text
and the claims of signed tokens). Any exception other than the decoder's own
error type, or a broken round-trip property, is a crash: libFuzzer prints the
input and writes it to `crash-<sha1>` (or under `-artifact_prefix=DIR/`).
Each libFuzzer run checks two inputs: the mutated bytes, and the same bytes
spliced into a well-formed seed (see `harness.spliced`).

`test_fuzz_smoke.py` runs every target for 3,000 runs in `make test`.

Long run recorded for issue 9 (2026-11-30, 2 cores shared with other test
runs, one target after the other, `-runs=1000000 -seed=7`, instrumentation as
in the files), all clean (exit 0, no crash file)::

    for t in payload json_codec uni_codec protobuf_codec token_claims; do
      .venv/bin/python -m tests.fuzz.fuzz_$t -runs=1000000 -seed=7 -artifact_prefix=/tmp/
    done

    payload          1,000,000 runs    18 s
    json_codec       1,000,000 runs    16 s
    uni_codec        1,000,000 runs    12 s
    protobuf_codec   1,000,000 runs   264 s
    token_claims     1,000,000 runs  1390 s
"""
