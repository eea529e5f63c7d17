"""The pure planner: cluster view in, :class:`~ironlb.agent.announcements.Plan` out.  No I/O, no clock.

- :func:`plan` (``reference``): the whole plan from scratch; the definition of correct.
- :class:`Planner` (``incremental``): the same value, replanning only the address groups
  an event touches; what the daemon runs.
- ``l2`` and ``bgp`` hold each mode's rules, per address group (``groups``); ``selection``
  the rules both share; ``ranking`` the layer-2 owner order and its memo.
"""

from __future__ import annotations

from ironlb.agent.planner.incremental import CHECK_EVERY, Planner, PlannerStats
from ironlb.agent.planner.reference import plan

__all__ = ["CHECK_EVERY", "Planner", "PlannerStats", "plan"]
