"""What a newcomer hit in the first hour (issue 17), driven through the real CLI."""

from __future__ import annotations

import subprocess
import sys


def test_a_misspelled_command_gets_one_hint(cli):
    r = cli("inpsect")
    assert r.code == 2 and r.err.count("Did you mean") == 1 and "Did you mean 'inspect'?" in r.err
    sub = cli("cache", "lsit")
    assert sub.code == 2 and sub.err.count("Did you mean") == 1


def test_the_cli_imports_without_deprecation_warnings():
    proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", "import ggufkit.cli.app"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
