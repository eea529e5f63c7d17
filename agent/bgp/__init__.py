"""BGP through BIRD 2: the only package that runs or talks to the BGP daemon.

- :mod:`agent.bgp.settings` -- what the speaker needs (run dir, secrets dir, BIRD, ports).
- :mod:`agent.bgp.birdconf` -- renders the node's BIRD configuration from its sessions
  and routes (pure).
- :mod:`agent.bgp.birdctl` -- BIRD's control socket: commands, replies, parsed status.
- :mod:`agent.bgp.speaker` -- the supervised BIRD process (start, reconfigure, restart, stop).
- :mod:`agent.bgp.shell` -- :class:`BGPShell`, the agent's Shell: plans -> configuration.
- :mod:`agent.bgp.launcher` -- runs in the child: parent-death signal, then ``exec bird``.

Why BIRD, and how routes reach it: docs/decisions/0041-bird-speaker.md.
"""
