"""The `mumur` command line. Each command lives in its own module under `mumur.cli` and registers
itself on the shared Typer app; commands parse arguments and call one library function."""

from __future__ import annotations

import importlib
import signal
import sys

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="mumur",
    help="Multilingual multimodal retrieval: synthesise, train, evaluate, index, search and serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Order here is the order in `mumur --help`.
_COMMAND_MODULES = [
    "synth", "demo", "leccr", "audio", "presets", "train", "pretrain", "distill", "eval",
    "features", "translate", "describe", "models", "mlmm", "mla", "mmp", "routes", "bitext",
    "index", "search", "calibrate", "info", "serve",
]


def _register_commands() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.cmd_{name}":
                continue  # command not built in this checkout
            raise
        module.register(app)


_register_commands()


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException (as KeyboardInterrupt) so that no `except Exception`
    swallows it: it unwinds the command, rolling back an open index transaction and releasing
    the writer lock and decode workers on the way."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def main() -> None:
    """Console entry point: typed mumur errors become one line on stderr and exit code 1; SIGTERM
    stops the command cleanly with one line and exit code 143 (an index run keeps its committed
    batches). Once `mumur serve` listens, uvicorn takes SIGTERM: it shuts down gracefully, then
    re-raises the signal, which ends here the same way."""
    from ..errors import MumurError

    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        app()
    except MumurError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Terminated:
        typer.echo("stopped by SIGTERM", err=True)
        sys.exit(128 + signal.SIGTERM)
    finally:  # a caller that runs main() in-process (tests) gets its own handler back
        signal.signal(signal.SIGTERM, previous)
