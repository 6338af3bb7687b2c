"""A short fuzz run as part of the suite (`make fuzz N=10000` runs the long one)."""

from __future__ import annotations

from tests.fuzz.run import fuzz


def test_short_fuzz_run(tmp_path):
    report = fuzz(200, seed=1234, cli_every=100, workdir=tmp_path)
    assert report.failures == [], "\n".join(report.failures)
    # the run must really have exercised both sides of validation and the CLI
    assert report.rejected > 20 and report.accepted > 20
    assert report.loaded > 0 and report.cli_runs > 0
