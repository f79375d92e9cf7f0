"""Fixtures for the reliability suites: moto behind a fault proxy, and the run's tally.

``faulty_aws`` is an s3proxy using the aws backend (plugins/aws) whose endpoint is a
``FaultProxy`` in front of moto, with short backend timeouts and few retries so that a
fault turns into an S3 error in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from s3proxy.testing import emulators
from tests.conftest import start_proxy, stop_proxy
from tests.reliability.fault_proxy import FaultProxy
from tests.reliability.helpers import TALLY, FaultyAws, aws_env


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not (TALLY.faults or TALLY.fuzz_cases or TALLY.notes):
        return
    terminalreporter.write_sep("-", "reliability")
    terminalreporter.write_line(
        f"faults injected (and survived): {TALLY.faults}; fuzz cases: {TALLY.fuzz_cases}; "
        f"unexpected 5xx: {TALLY.server_errors}; objects lost: {TALLY.objects_lost}"
    )
    for note in TALLY.notes:
        terminalreporter.write_line(note)


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulators.Emulator]:
    with emulators.running("aws", tmp_path_factory.mktemp("moto")) as em:
        yield em


@pytest.fixture(scope="module")
def faulty_aws(
    moto: emulators.Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultyAws]:
    cloud_bucket = emulators.new_name("rel")
    emulators.create_bucket(moto, cloud_bucket)
    faults = FaultProxy(moto.endpoint).start()
    server = start_proxy(
        tmp_path_factory.mktemp("faulty-aws"),
        "aws",
        env=aws_env(moto, faults.endpoint, cloud_bucket),
    )
    try:
        yield FaultyAws(server, faults, moto, cloud_bucket)
    finally:
        TALLY.faults += faults.injected
        stop_proxy(server)
        faults.stop()
