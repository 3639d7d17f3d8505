"""The upload glue against Starlette's form parser (upload_differential.py, fuzzed by
fuzz_uploads.py): the corpus and every
crasher found so far as regression inputs, a bounded atheris run, and parsing time that grows
linearly with the body, for the inputs that make multipart parsers backtrack."""

from __future__ import annotations

import contextlib
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from upload_differential import CONTENT_TYPE, check_one

from catdog.errors import RequestRefusedError
from catdog.serving.uploads import files_in

CORPUS = Path(__file__).parent / "fuzz_corpus"
# A bounded campaign for `make test`; the README gives the longer one.
FUZZ_SECONDS = 20


@pytest.mark.parametrize(
    "path",
    sorted((CORPUS / "uploads").iterdir()) + sorted((CORPUS / "crashers").iterdir()),
    ids=lambda path: f"{path.parent.name}/{path.name}",
)
def test_both_parsers_agree_on_the_corpus_and_past_crashers(path: Path) -> None:
    check_one(path.read_bytes())


@pytest.mark.slow
def test_a_bounded_fuzzing_run_finds_no_disagreement(tmp_path: Path) -> None:
    corpus = shutil.copytree(CORPUS / "uploads", tmp_path / "corpus")
    # Linux carries a process's peak RSS over fork and exec, and libFuzzer's limit reads that
    # peak: late in a full run the child starts at pytest's own (over 2 GB), so the fuzzer is
    # given its default 2 GB on top of what it inherits, and each malloc stays capped at 2 GB.
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("fuzz_uploads.py")),
            f"-max_total_time={FUZZ_SECONDS}",
            f"-rss_limit_mb={inherited_mb + 2048}",
            "-malloc_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DONE" in result.stderr


def parse_seconds(body: bytes) -> float:
    started = time.perf_counter()
    with contextlib.suppress(RequestRefusedError):
        files_in(body, CONTENT_TYPE, "file", max_files=4, limit_hint="")
    return time.perf_counter() - started


@pytest.mark.parametrize(
    "filler",
    [b"\r\n--catdo", b"\r", b"-", b"\r\n--catdog-", b"\r\n\r\n"],
    ids=["near_boundaries", "carriage_returns", "dashes", "false_ends", "blank_lines"],
)
def test_parsing_time_grows_linearly_with_pathological_bodies(filler: bytes) -> None:
    head = b'--catdog\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'

    def body(size: int) -> bytes:
        return head + filler * (size // len(filler)) + b"\r\n--catdog--\r\n"

    small = min(parse_seconds(body(256 * 1024)) for _ in range(3))
    large = min(parse_seconds(body(8 * 256 * 1024)) for _ in range(3))
    # 8x the bytes; quadratic would be 64x. The margin absorbs a busy host's noise.
    assert large < 24 * small + 0.05, (small, large)
