"""Differential fuzzing of the upload glue against Starlette's form parser with atheris
(coverage-guided, libFuzzer's engine); the check itself is upload_differential.check_one.

    .venv/bin/python tests/serving/fuzz_uploads.py -max_total_time=600 CORPUS_COPY_DIR

runs the longer campaign (README, Reliability); `make test` runs a bounded one
(test_upload_fuzzing.py). A disagreement is written as crash-<sha1> (libFuzzer's
-artifact_prefix says where); keep it under tests/serving/fuzz_corpus/crashers/ as a
regression input once fixed.
"""

from __future__ import annotations

import sys

import atheris

# Instrumented for coverage: the two parsers and python-multipart under them.
with atheris.instrument_imports():
    import python_multipart  # noqa: F401
    import starlette.formparsers  # noqa: F401

    import catdog.serving.uploads  # noqa: F401

from upload_differential import check_one


def test_one_input(data: bytes) -> None:
    """atheris' entry point: one body through both parsers."""
    check_one(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
