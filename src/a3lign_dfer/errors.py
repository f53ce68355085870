"""Mistakes a user fixes in params.yaml, the inputs or the environment, as opposed to bugs.

The CLI (commands.invoke) prints a UserError's message as one line and exits 2; the
traceback is for bugs, and for anyone who sets A3LIGN_DEBUG=1. The two kinds below
also subclass the builtin a caller would catch (ValueError, FileNotFoundError).
"""
from __future__ import annotations

DEBUG_ENV = "A3LIGN_DEBUG"


class UserError(Exception):
    """Its message names the key or file at fault and what to do about it."""


class ConfigError(UserError, ValueError):
    """A params value this code cannot run with, or data and checkpoints that do not match the params."""


class MissingInput(UserError, FileNotFoundError):
    """A file or folder named by params or on the command line is not there."""
