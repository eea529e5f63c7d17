"""IronLB node agent: runs on every node (DaemonSet, hostNetwork) and announces addresses.

Shape: a *pure planner* (``ironlb.agent.planner``: cluster view in, announcements out) with thin
shells around it that touch the world -- netlink (``ironlb.agent.netlink``), ARP/NDP raw sockets
(``ironlb.agent.l2``), the BGP speaker (``ironlb.agent.bgp``), peer membership (``ironlb.agent.membership``)
and the source of the cluster view (``ironlb.agent.sources``: a directory of manifests, or the
Kubernetes API).  ``ironlb.agent.daemon`` wires them together.

The agent never imports Pulumi or the components (import-linter enforces it).
"""
