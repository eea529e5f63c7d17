"""Layer 2: answering ARP (IPv4) and NDP (IPv6) for the addresses this node owns.

- :mod:`ironlb.agent.l2.packets` -- wire formats, pure parse/build (fuzzed);
- :mod:`ironlb.agent.l2.conflicts` -- the pure rules for other hosts' claims: probe verdicts,
  the hand-over grace, RFC 5227 defence, retry back-off;
- :mod:`ironlb.agent.l2.responders` -- one raw socket per interface and family on the asyncio loop;
- :mod:`ironlb.agent.l2.shell` -- :class:`~ironlb.agent.l2.shell.L2Shell`, the daemon's layer-2 shell:
  interface choice, probing, defence, gratuitous announcements, withdraw on close.

Only the standard library touches the sockets; interface facts come from
:mod:`ironlb.agent.netlink`.
"""
