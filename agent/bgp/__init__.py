"""BGP through ExaBGP: the only package that launches or imports ExaBGP.

- :mod:`agent.bgp.settings` -- tunables (private run dir, secrets dir, batch size).
- :mod:`agent.bgp.exaconf` -- renders one session's ExaBGP config and environment (pure).
- :mod:`agent.bgp.api` -- encodes announce/withdraw commands in batches and parses what
  ExaBGP says back (acks, neighbour state) (pure).
- :mod:`agent.bgp.speaker` -- one supervised ExaBGP process per session.
- :mod:`agent.bgp.shell` -- :class:`BGPShell`, the agent's Shell: diffs plans into
  session restarts and route announcements.
- :mod:`agent.bgp.launcher`, :mod:`agent.bgp.relay` -- run in the child processes.

Why one process per session, and the ExaBGP tuning: docs/decisions/0040-bgp-speaker.md.
"""
