"""Cluster mode of the lab: the rendered install of a stack, deployed unmodified and run whole.

``ironlb render --stack <env>`` output -- with the stack's secrets revealed for the lab only --
is loaded into the Kubernetes API stand-in (:mod:`lab.apiserver`: RBAC from the rendered
roles, schema validation and pruning, status subresources, 409s, TLS and ServiceAccount
tokens), and every Pod of every rendered DaemonSet and Deployment runs as processes in the
lab's network namespaces, as a kubelet would run it.  No test-only flag, variable or file
reaches a pod: if the rendered spec cannot run, the test fails.

Modules (a pure core, thin shells)::

    topology   manifests -> the lab network (LAN prefixes, one router per peer, bond0, AnyIP)
    workloads  DaemonSets/Deployments -> Pods bound to nodes (controllers + scheduler)
    image      the image config (ENV/USER/ENTRYPOINT/CMD) from the Dockerfile that builds it
    resolve    downward API, ConfigMap/Secret keys, volume files
    podspec    a Pod -> exactly what to run per container (argv, env, mounts, uid, caps, probes)
    podinit    in the pod's namespaces: files at their mountPaths, read-only root, setpriv, exec
    sandbox    a pod's network namespace (non-hostNetwork) and emptyDirs
    probes     one httpGet/tcpSocket/exec probe attempt; thresholds
    kubelet    runs and restarts containers, probes, back-off, Pod status, restart counts
    api        REST to the stand-in: admin over its Unix socket, users over TLS with a token
    routers    one BIRD per BGP peer address, two channels per session, MD5 from the Secret
    deploy     Cluster: render -> lab -> API server -> load -> Nodes -> routers -> backends -> pods
    checks     addresses, reachability, the Lease holder, violation figures, what a process has
    scenario   issue 9's steps (converge, soak, kill leader, kill agent, edit pool, tenant)
    exposure   is an address answered (LAN client: capture + arping/ndisc6) or routed (every BIRD)?
    hostile_tenant  issue 10's tenant attacks (forged records, escapes, a restart), run and judged
    hostile_lan     issue 10's LAN attacks from an intruder host (membership flood, spoofed ARP)
    foreign_host    a foreign host holding/claiming an address through an owner crash; takeover

Use::

    with deployed("prod") as cluster:               # lab.cluster.deploy
        converged = scenario.converge(cluster)      # addresses, TCP from both clients, BGP paths
        fig = scenario.soak(cluster, 120)           # fig.zeros(): restarts, 403s, pruned, 409s...
        scenario.kill_leader(cluster, converged.addresses)
        cluster.kill_pod(name); cluster.edit(...); checks.leader(cluster); cluster.routers[...]

Choices, and what differs from a cluster:

- **Two ToRs are two routers.**  Each distinct BGPPeer address is its own namespace with its
  own BIRD (prod: ``router`` 10.20.0.1 AS 65001, ``router2`` 10.20.0.2 AS 65002): each keeps
  its own sessions, RIB and FIB, as two boxes do, and a test can stop one.
- **kube-proxy** is not reproduced: every pool range is accepted locally on every node
  (AnyIP routes on ``lo``; the kernel never answers ARP/NDP for them), and a TCP server on
  every node answers every Service port with the node's name.  Who receives the traffic is
  decided only by the agents' ARP/NDP answers and BGP next hops.  EndpointSlices put a ready
  endpoint on every node.
- **Hosts that are no node**: ``Cluster(stack, extra_hosts=("intruder",))`` adds LAN hosts
  (a free host number each) for tests that need one, e.g. a foreign host or a flooder.
- **The API server is not at a cluster IP**: ``KUBERNETES_SERVICE_HOST``/``_PORT`` name the
  stand-in's address on the LAN (host ``api``), so API traffic crosses the lab LAN.  No DNS:
  ``dnsPolicy`` has no effect; nothing in IronLB resolves names.
- **Pods without hostNetwork** get their own network namespace and a routed veth to their
  node (``10.244.<node>.x``; :mod:`lab.cluster.sandbox`); IPv4 only; no NetworkPolicy.
- **Scheduling**: DaemonSets per nodeSelector/affinity/taints; Deployments spread evenly by
  node name (:mod:`lab.cluster.workloads`).  Every lab node carries the labels the rendered
  workloads select (all are workers); no control-plane node, no taints.
- **The image filesystem is the host's**, read-only when ``readOnlyRootFilesystem``, with the
  image's virtualenv mapped to this checkout's (logged in each container's log); the image
  config comes from ``agent/Dockerfile``.
- **Capabilities as Kubernetes gives them**: the bounding set is exactly the container's;
  a root process has them effective, a non-root one has none (no ambient capabilities).
- **Not reproduced**: cgroups (limits, OOM kills), seccomp/AppArmor, init/sidecar/ephemeral
  containers, lifecycle hooks, eviction, ConfigMap/Secret updates reaching a running
  container, Node heartbeats (Nodes stay Ready), the real scheduler and controllers
  (ReplicaSets, rollouts), Pod deletion and re-creation (a killed pod's container restarts in
  place; ``kill_pod(..., down_for=s)`` keeps it down ``s`` seconds without growing its back-off,
  as a CrashLoopBackOff followed by a fresh pod would), the Node authorizer (the kubelet writes
  Pod status as admin).
- **Secrets**: the revealed manifests live in the lab's work dir (0700, files 0600) and the
  kubelet's per-container plans (0600), never in logs; the work dir is removed at teardown
  unless ``IRONLB_LAB_KEEP`` is set.
"""
