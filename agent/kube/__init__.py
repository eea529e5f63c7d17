"""IronLB on Kubernetes: the only package that talks to the API server.

- ``client``     -- :class:`KubeClient`, a dict-in/dict-out wrapper over lightkube (the only
  module importing lightkube); errors mapped to what the caller should do; every request
  counted (``KubeClient.calls``).
- ``informer``   -- list-then-watch caches with relist+diff on 410 or a broken stream.
- ``lease``      -- coordination.k8s.io Lease election (get/create/replace, resourceVersion CAS).
- ``viewfeed``   -- informer events -> the shared view builder (:mod:`ironlb.agent.viewbuild`) and
  the parsed Config (last good version of each custom resource); used by both roles.
- ``controller`` -- the IPAM controller: rebuild, allocate, write status/annotations/events.
- ``records``    -- a Service's record against the controller's answer: what to rewrite, what
  to report (forged annotations, status the trust check refuses).
- ``writers``    -- Service status/annotation/condition writes, Events, custom resource status.
- ``nodestate``  -- the speaker's NodeState (its report on itself) and the controller's reading
  of all of them (who announces each address, BGP sessions per peer).
- ``runtime``    -- ``ironlb-controller``: informers, Lease election and controller terms.

The speaker's side (informers -> ClusterViews, the NodeState reporter) is
:mod:`ironlb.agent.sources.kube`.
"""
