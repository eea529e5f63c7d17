"""BGP through BIRD 2: the only package that runs or talks to the BGP daemon.

- :mod:`ironlb.agent.bgp.settings` -- what the speaker needs (run dir, secrets dir, BIRD, ports).
- :mod:`ironlb.agent.bgp.birdconf` -- renders the node's BIRD configuration from its sessions
  and routes (pure).
- :mod:`ironlb.agent.bgp.birdctl` -- BIRD's control socket: commands, replies, parsed status.
- :mod:`ironlb.agent.bgp.speaker` -- the supervised BIRD process (start, reconfigure, restart, stop).
- :mod:`ironlb.agent.bgp.shell` -- :class:`BGPShell`, the agent's Shell: plans -> configuration.
- :mod:`ironlb.agent.bgp.launcher` -- runs in the child: parent-death signal, then ``exec bird``.

Why BIRD, and how routes reach it: docs/decisions/0041-bird-speaker.md.
"""
