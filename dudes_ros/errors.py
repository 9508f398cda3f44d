"""The package's own error classes: problems a user can fix (configuration, data, files,
options), as opposed to bugs.

``dudes`` prints the message of a ``DudesError`` as one line, ``dudes <command>: <message>``,
and exits with status 2 (the traceback only with ``--verbose``). Messages therefore say what
was wrong, which file or option, and what was expected. Every subclass also derives from the
built-in exception it refines (``ValueError``, ``FileNotFoundError``), so callers that catch
those keep working.
"""

from __future__ import annotations


class DudesError(Exception):
    """An error in what the user gave (not a bug); the message is complete on one line."""


class UsageError(DudesError, ValueError):
    """A command-line option or input that a command cannot use."""
