"""CEL ``x-kubernetes-validations`` rules, evaluated with cel-python (the one module that imports it).

A rule sees the value at its schema node as ``self`` (and, for transition rules, the old value
as ``oldSelf``; those run only on updates where an old value exists, as in Kubernetes).
cel-python implements the CEL language but not the Kubernetes CEL libraries (``quantity()``,
``isIP()``, ``url()``, ``format.*``, ...): a rule that needs one, or that cel-python cannot
parse, evaluates to :data:`UNSUPPORTED` -- the caller reports it and does not enforce it,
rather than reject what the real server would accept.  ``ironlb.crds.CEL_RULES`` are plain
CEL and are enforced.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Final, Literal

import celpy
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

UNSUPPORTED: Final = "unsupported"
Outcome = bool | Literal["unsupported"]

_OLD_SELF = re.compile(r"\boldSelf\b")
_ENV = celpy.Environment()


def uses_old_self(rule: str) -> bool:
    return bool(_OLD_SELF.search(rule))


@cache
def _program(rule: str) -> Any:
    try:
        return _ENV.program(_ENV.compile(rule))
    except CELParseError:
        return None


def _undeclared(error: BaseException) -> bool:
    """cel-python lacks a function or identifier the rule uses (a Kubernetes CEL library)."""
    text = str(error)
    return "undeclared reference" in text or "no such overload" in text or "unknown function" in text


def evaluate(rule: str, value: Any, old: Any = None) -> tuple[Outcome, str]:
    """(True | False | UNSUPPORTED, detail): whether ``value`` satisfies ``rule``."""
    program = _program(rule)
    if program is None:
        return UNSUPPORTED, "cel-python cannot parse the rule"
    activation: dict[str, Any] = {"self": json_to_cel(value)}
    if old is not None:
        activation["oldSelf"] = json_to_cel(old)
    try:
        result = program.evaluate(activation)
    except CELEvalError as exc:
        result = exc
    except (TypeError, KeyError, ValueError, ZeroDivisionError) as exc:  # cel-python's own gaps
        return UNSUPPORTED, f"cel-python failed: {type(exc).__name__}: {exc}"
    if isinstance(result, CELEvalError):
        if _undeclared(result):
            return (
                UNSUPPORTED,
                f"cel-python lacks what the rule uses: {str(result).split('(in activation')[0]}",
            )
        return False, f"evaluation error: {str(result).split('(in activation')[0].strip()}"
    if isinstance(result, celpy.celtypes.BoolType | bool):
        return bool(result), ""
    return False, f"rule returned {type(result).__name__}, not a bool"
