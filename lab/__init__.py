"""A throwaway network-namespace lab for IronLB: real agents, real ARP/NDP, real BGP daemons.

Used by the lab tests (``tests/lab/``, root only) and the benchmarks (``bench/``).  Nothing
here is imported by the agent (import-linter forbids ``agent -> lab``).

Topology (built in ~0.3 s; every namespace name carries a unique per-run tag)::

        ext LAN (br1)   10.79.0.0/24  fd79::/64
     extclient .100 ---------------- router .1 (forwarding on)
                                        |
        LAN (br0)       10.77.0.0/24  fd77::/64       (.1 / ::1 = router)
     node1 .11  node2 .12  ...  nodeN .(10+N)          client .100
     fd77::11   fd77::12        fd77::(10+N)           fd77::100

Both LANs are Linux bridges in one extra namespace; every host has ``eth0`` (and the
router ``eth1`` on the ext LAN), a fixed MAC ``02:77:00:00:<lan 00/01>:<host octet in hex>``, ``lo`` up,
IPv6 addresses added ``nodad`` and a default route via the router.

How a lab node accepts VIP traffic (there is no kube-proxy here): every node gets AnyIP
routes for the whole VIP range (:data:`VIP_V4_NET`, :data:`VIP_V6_NET`):
``ip route add local 10.77.0.192/26 dev lo`` (and the v6 twin), plus
``arp_ignore=1 arp_announce=2`` so the kernel itself never answers ARP for them (and the
kernel never answers NS for AnyIP v6).  Every node therefore *accepts* any VIP, but only
the node whose agent answers ARP/NDP *receives* the traffic — exactly what layer-2 mode
means.  :meth:`Lab.start_vip_servers` runs ``lab.vipserver`` on each node: a TCP server on
:data:`VIP_PORT` that replies with the node's name, so a client sees which node it reached.

API::

    with Lab(nodes=3) as lab:             # or the ``lab`` pytest fixture (tests/lab/conftest.py)
        lab.ns("node1")                   # namespace name ("ilb12345ab-node1")
        lab.addr("node1", 4)              # "10.77.0.11"   (family 6 -> "fd77::11")
        lab.mac("node1")                  # "02:77:00:00:00:0b"
        lab.run("client", "ping", "-c1", "10.77.0.11", timeout=5)   # CompletedProcess, check=True
        p = lab.spawn("node1", [sys.executable, "-m", "..."], name="agent-node1", env={...})
        lab.stop(p, signal.SIGTERM)       # by PID; waits; returns the exit code
        lab.workdir                       # per-run directory: logs (<name>.log), configs, sockets
        lab.teardown()                    # idempotent; also runs at exit / garbage collection

Processes are started in their own session and killed by PID (never by name); teardown
then kills whatever else is left in each namespace (``ip netns pids``) before deleting it.

Client-side probes (arping, ``ip neigh``, TCP "which node answered") live in
:mod:`lab.probe`; starting agents on a standalone manifest directory in :mod:`lab.agents`;
the documents they read (and that tests and benchmarks build) in :mod:`lab.manifests`;
membership processes in :mod:`lab.membership`.  Every wait for an outcome goes through
:mod:`lab.waiting` (``wait_for``/``eventually``, and ``holds``/``always`` for "nothing happened");
every lab failure is a :class:`LabError` (:mod:`lab.errors`).

``Lab(nodes, topology=Topology(...))`` builds another addressing (LAN prefixes, several
routers, the nodes' interface name, AnyIP prefixes, extra LAN hosts); :mod:`lab.cluster`
derives one from a rendered stack and deploys that install whole (cluster mode), with the
Kubernetes API stand-in of :mod:`lab.apiserver`.
"""

from lab.errors import LabError, WaitTimeout
from lab.netns import HOSTS_FIXED, VIP_PORT, VIP_V4_NET, VIP_V6_NET, Lab, Topology

__all__ = [
    "HOSTS_FIXED",
    "VIP_PORT",
    "VIP_V4_NET",
    "VIP_V6_NET",
    "Lab",
    "LabError",
    "Topology",
    "WaitTimeout",
]
