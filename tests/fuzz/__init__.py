"""Fuzz targets, one per decoder of input from outside (atheris / libFuzzer).

Each `fuzz_<decoder>.py` runs as a script::

    python -m tests.fuzz.fuzz_json_codec -runs=1000000

Any exception other than the decoder's own error type, or a broken
round-trip property, is a crash (libFuzzer prints the input and writes it to
`crash-<sha1>` in the current directory). `test_fuzz_smoke.py` runs every
target for a few thousand inputs as part of the test suite.
"""
