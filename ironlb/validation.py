"""Cross-object rules: the checks that need more than one object at a time.

``check(config)`` returns a list of :class:`~ironlb.errors.Issue` (errors and warnings);
``ironlb.config.parse`` calls it after every object has passed its own schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironlb.errors import Issue

if TYPE_CHECKING:
    from ironlb.config import Config


def check(config: Config) -> list[Issue]:
    """Every cross-object problem in ``config``."""
    return []
