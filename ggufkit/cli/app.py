"""The `ggufkit` command: builds the Typer app and turns errors into one line and an exit code.

Commands import their core modules (numpy, gguf, llama_cpp) lazily, so `ggufkit --help` stays fast.
"""

from __future__ import annotations

import os
import sys
import traceback

import click
import typer

from ggufkit import __version__
from ggufkit.cli import bench as bench_cmd
from ggufkit.cli import convert as convert_cmd
from ggufkit.cli import doctor as doctor_cmd
from ggufkit.cli import inspect as inspect_cmd
from ggufkit.cli import quantize as quantize_cmd
from ggufkit.cli import run as run_cmd
from ggufkit.cli import sample as sample_cmd
from ggufkit.errors import EXIT_FAILURE, EXIT_INTERRUPTED, GgufkitError

app = typer.Typer(
    name="ggufkit",
    help="A toolkit for llama.cpp model files: inspect, convert legacy GGJT v3 to GGUF, quantize, bench, run.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 success, 1 failure, 2 bad usage or bad input file, 3 benchmark regression, 130 interrupted.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ggufkit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show the Python traceback on errors (anywhere on the line)."),
) -> None:
    """ggufkit: llama.cpp model files from the shell."""


app.command("inspect")(inspect_cmd.inspect)
app.command("quantize")(quantize_cmd.quantize)
app.command("convert")(convert_cmd.convert)
app.command("sample")(sample_cmd.sample)
app.command("run")(run_cmd.run)
app.command("doctor")(doctor_cmd.doctor)
app.command("bench")(bench_cmd.bench)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    head = args[: args.index("--")] if "--" in args else args
    debug = "--debug" in head or bool(os.environ.get("GGUFKIT_DEBUG"))
    args = [a for a in head if a != "--debug"] + args[len(head):]
    if not debug:  # ggml's abort otherwise attaches gdb and prints a native backtrace at the user
        os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="ggufkit", standalone_mode=False)
    except GgufkitError as e:
        _fail(str(e), e.exit_code, debug)
    except (KeyboardInterrupt, click.exceptions.Abort):
        _fail("interrupted", EXIT_INTERRUPTED, debug)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.stderr.close()  # `ggufkit ... | head` is not an error
        sys.exit(0)
    except Exception as e:  # a bug in ggufkit: still one line, the traceback on --debug
        _fail(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", EXIT_FAILURE, debug)
    sys.stdout.flush()  # results are out even if a native library misbehaves while the process ends
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    sys.stderr.write(f"ggufkit: error: {message}\n")
    sys.exit(code)
