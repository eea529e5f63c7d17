"""What the lab raises: a failed lab command, and a wait that ran out of time.

Both are :class:`LabError`, so a caller that drives the lab (the demo, a benchmark) handles
every lab failure in one ``except``; a test lets them fail the test with their message.
"""

from __future__ import annotations


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


class WaitTimeout(LabError):
    """Something waited for did not happen in time (:mod:`lab.waiting`).

    The message names what was waited for, the time allowed and the last value observed.
    """
