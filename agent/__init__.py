"""IronLB node agent: runs on every node (DaemonSet, hostNetwork) and announces addresses.

Shape: a *pure planner* (``agent.planner``: cluster view in, announcements out) with thin
shells around it that touch the world -- netlink (``agent.netlink``), ARP/NDP raw sockets
(``agent.l2``), the BGP speaker (``agent.bgp``), peer membership (``agent.membership``)
and the source of the cluster view (``agent.sources``: a directory of manifests, or the
Kubernetes API).  ``agent.daemon`` wires them together.

The agent never imports Pulumi or the components (import-linter enforces it).
"""
