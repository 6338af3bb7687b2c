"""The `ggufkit` command: builds the Typer app and turns errors into one line and an exit code.

Commands import their core modules (numpy, gguf, llama_cpp) lazily, so `ggufkit --help` stays fast.
Exit codes: a command returns its code (None for 0) and raises GgufkitError (or a subclass, which
carries its code) for errors; main() prints the one line and exits.
"""

from __future__ import annotations

import errno
import functools
import importlib
import os
import re
import sys
import traceback
from dataclasses import dataclass
from typing import Any

import click
import typer
from typer.core import TyperGroup

from ggufkit import __version__
from ggufkit.cli.output import end_stdout_line, track_stdout
from ggufkit.errors import EXIT_FAILURE, EXIT_INTERRUPTED, GgufkitError


@dataclass
class _Debug:
    """Whether errors show their traceback: GGUFKIT_DEBUG, or --debug anywhere on the line."""

    on: bool = False
    quiet_ggml: bool = False  # we set GGML_NO_BACKTRACE (not the user), so --debug may take it back


def _debug_option() -> click.Option:
    def enable(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        state = ctx.find_object(_Debug)
        if value and state is not None:
            state.on = True
            os.environ["GGUFKIT_DEBUG"] = "1"  # the core and child processes see it too (runtime/abort.py)
            if state.quiet_ggml:
                os.environ.pop("GGML_NO_BACKTRACE", None)

    return click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True, callback=enable,
                        help="Show the Python traceback on errors (anywhere on the line; or GGUFKIT_DEBUG=1).")


# click >= 8.4 adds "Did you mean …?" to a misspelled command itself (NoSuchCommand); typer < 0.26 adds its own.
CLICK_SUGGESTS = hasattr(click.exceptions, "NoSuchCommand")


class _Group(TyperGroup):
    """The root group; it gives itself and every command the --debug flag, so it is accepted anywhere."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        todo: list[click.Command] = [self]
        while todo:  # sub-groups (`cache`) and their commands too
            command = todo.pop()
            command.params.append(_debug_option())
            command.help = unwrap(command.help)
            if CLICK_SUGGESTS and hasattr(command, "suggest_commands"):
                command.suggest_commands = False  # else a misspelled command gets typer's hint after click's
            todo.extend(getattr(command, "commands", {}).values() if command is not self else self.commands.values())


def unwrap(text: str | None) -> str | None:
    """A docstring's paragraphs as single lines: the help renderer keeps a docstring's line breaks, so at 80
    columns its lines broke mid-sentence; one line per paragraph lets it wrap to the terminal."""
    if not text:
        return text
    return "\n\n".join(" ".join(line.strip() for line in para.splitlines()) for para in text.strip().split("\n\n"))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ggufkit {__version__}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """ggufkit: llama.cpp model files from the shell."""
    if ctx.invoked_subcommand:  # named in the one line a crash inside llama.cpp becomes (runtime/abort.py)
        os.environ["GGUFKIT_COMMAND"] = ctx.invoked_subcommand


# each command's module and function, imported only when the app is built with it (see _command)
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("inspect", "inspect"), "quantize": ("quantize", "quantize"), "convert": ("convert", "convert"),
    "sample": ("sample", "sample"), "run": ("run", "run"), "doctor": ("doctor", "doctor"), "bench": ("bench", "bench"),
    "eval": ("eval", "eval_"), "fit": ("fit", "fit"), "imatrix": ("imatrix", "imatrix"),
    "rpc-server": ("rpc_server", "rpc_server"), "split": ("split", "split"), "merge": ("split", "merge"),
    "edit": ("edit", "edit"), "diff": ("diff", "diff"),
}
GROUPS: dict[str, str] = {"models": "models", "cache": "cache"}  # sub-apps: module with its `app`


def _cli_module(name: str) -> Any:
    return importlib.import_module(f"ggufkit.cli.{name}")


def _typer(only: str | None = None) -> typer.Typer:
    """The app with every command, or with only the one being run (see _command)."""
    t = typer.Typer(
        name="ggufkit",
        cls=_Group,
        help="A toolkit for llama.cpp model files: inspect, convert pre-GGUF (GGML, GGMF, GGJT) files to GGUF, quantize, bench, run; split, merge, edit and diff them.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        epilog="Exit codes: 0 success, 1 failure, 2 bad usage or bad input file, 3 benchmark regression, 130 interrupted.",
    )
    t.callback()(root)
    for name, (module, function) in COMMANDS.items():
        if only in (None, name):
            t.command(name)(getattr(_cli_module(module), function))
    for name, module in GROUPS.items():
        if only in (None, name):
            t.add_typer(_cli_module(module).app, name=name)
    return t


def __getattr__(name: str) -> Any:
    """`app`, the whole Typer app (for tools and tests), built on first use: a command line needs only its
    own command's module (_command), and importing every one costs a tenth of a second."""
    if name == "app":
        return _typer()
    raise AttributeError(name)


@functools.cache
def _command(only: str | None = None) -> click.Command:
    """The click command tree, built once per process (tests run many command lines in one). Importing every
    command's module and reading its signature and type hints costs ~0.1 s (a third of a `split`), so a
    command line that names its command gets a tree of that command alone; `--help`, a misspelled command
    and no command at all get the whole tree."""
    return typer.main.get_command(_typer(only))


def _invoked(argv: list[str]) -> str | None:
    """The command a command line names: its first word that is not an option (the root's options take
    no value), when it is a command; None when the root's own help comes first (it lists every command)."""
    for arg in argv:
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS or arg in GROUPS else None
    return None


def main(argv: list[str] | None = None) -> None:
    debug = _Debug(on=bool(os.environ.get("GGUFKIT_DEBUG")))
    if not debug.on and "GGML_NO_BACKTRACE" not in os.environ:
        # ggml's abort otherwise attaches gdb and prints a native backtrace at the user
        os.environ["GGML_NO_BACKTRACE"] = "1"
        debug.quiet_ggml = True
    # numpy's OpenBLAS starts a thread per core when numpy loads (with llama_cpp, in every command that runs a
    # model), and each spins ~0.1 s of CPU before it sleeps: on 2 cores a tenth of a second taken from
    # llama.cpp's threads at every start. ggufkit's numpy work is elementwise: BLAS threads never serve it.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    command = _command(_invoked(sys.argv[1:] if argv is None else argv))
    track_stdout()  # so that an error line never glues onto text left open on stdout (output.py)
    try:
        code = command.main(args=argv, prog_name="ggufkit", standalone_mode=False, obj=debug)
    except GgufkitError as e:
        _fail(str(e), e.exit_code, debug.on)
    except (KeyboardInterrupt, click.exceptions.Abort):
        _fail("interrupted", EXIT_INTERRUPTED, debug.on)
    except click.ClickException as e:
        _usage(e, command, sys.argv[1:] if argv is None else argv, debug.on)
    except BrokenPipeError:
        sys.stderr.close()  # `ggufkit ... | head` is not an error
        sys.exit(0)
    except OSError as e:
        if e.errno in _WRITE_ERRNOS:  # a write the core did not foresee: still the one documented line
            where = f"{e.filename}: " if e.filename else ""
            _fail(f"{where}cannot write: {e.strerror}", EXIT_FAILURE, debug.on)
        _internal(e, debug.on)
    except Exception as e:  # a bug in ggufkit: still one line, the traceback on --debug
        _internal(e, debug.on)
    sys.stdout.flush()  # results are out even if a native library misbehaves while the process ends
    sys.exit(code if isinstance(code, int) else 0)


# errors that only writing raises (EACCES/EPERM also come from reading, so those stay "internal")
_WRITE_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _internal(e: Exception, debug: bool) -> None:
    hint = "" if debug else " (run with --debug for the traceback)"  # with --debug the traceback is above
    _fail(f"internal error: {type(e).__name__}: {e}{hint}", EXIT_FAILURE, debug)


def _usage(e: click.ClickException, root: click.Command, argv: list[str], debug: bool) -> None:
    """click's usage errors as every other error: one line (its suggestion kept), then one hint line."""
    message = _DID_YOU_MEAN.sub(lambda m: f" (did you mean {m.group(1)}?)", e.format_message()).strip()
    message = message.rstrip(".")
    message = message[:1].lower() + message[1:]
    ctx = getattr(e, "ctx", None)
    path = ctx.command_path if ctx is not None else _command_path(root, argv)
    where = path.removeprefix("ggufkit").strip()
    if isinstance(e, click.UsageError):
        _fail(f"{where}: {message}" if where else message, e.exit_code, debug,
              hint=f"see `{path} --help`")
    _fail(message, e.exit_code, debug)


def _command_path(root: click.Command, argv: list[str]) -> str:
    """`ggufkit run` for `ggufkit run -n` (click raises some usage errors before it knows the command)."""
    words, command = ["ggufkit"], root
    for arg in argv:
        sub = getattr(command, "commands", {}).get(arg)
        if sub is None:
            if not arg.startswith("-"):
                break
            continue
        words.append(arg)
        command = sub
    return " ".join(words)


# click's "… 'x'. (Did you mean one of: 'a', 'b'?)" and "… 'x'. Did you mean 'a'?"
_DID_YOU_MEAN = re.compile(r"\.?\s*\(?Did you mean (?:one of: )?(.*?)\?\)?\s*$")


def _fail(message: str, code: int, debug: bool, hint: str | None = None) -> None:
    end_stdout_line()
    if debug:
        traceback.print_exc()
    sys.stderr.write(f"ggufkit: error: {message}\n" + (f"ggufkit: {hint}\n" if hint else ""))
    sys.exit(code)
