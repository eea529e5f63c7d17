"""IronLB on Kubernetes: the only package that talks to the API server.

- ``client``     -- :class:`KubeClient`, a dict-in/dict-out wrapper over lightkube (the only
  module importing lightkube); errors mapped to what the caller should do.
- ``informer``   -- list-then-watch caches with relist+diff on 410 or a broken stream.
- ``lease``      -- coordination.k8s.io Lease election (get/create/replace, resourceVersion CAS).
- ``viewbuild``  -- informer stores -> :class:`~agent.view.ClusterView` (pure).
- ``controller`` -- the IPAM controller role: rebuild, allocate, write status/annotations/events.
- ``writers``    -- Service status/annotation/condition writes, Events, IPPool/Tenant status.
- ``runtime``    -- wires informers, election and controller for ``ironlb-agent --source kube``.
"""
