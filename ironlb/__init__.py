"""IronLB's shared core: the schema, config parsing and validation, IPAM and CRD generation.

Both halves stand on this package: the Pulumi components (``components``) validate with
it at preview time, and the node agent (``agent``) plans and allocates with it at run
time.  It imports none of our other packages and no outside runtime (Pulumi, pyroute2,
Kubernetes clients); import-linter enforces that.

Modules:
- ``model``     -- the custom resources (pydantic, frozen), one definition each
- ``fields``    -- the building blocks of the models; ``status`` -- their status models
- ``addresses`` -- address and range parsing (netaddr), special-purpose address facts
- ``service``   -- what a LoadBalancer Service asks for, and what it was given
- ``config``    -- ``parse(docs) -> Config``: parse once; ``checked`` -- the Config it returns
- ``validation`` -- the cross-object rules ``parse`` runs
- ``ipam``      -- pure, deterministic address allocation, and the trust check
- ``crds``      -- CustomResourceDefinitions generated from ``model``
- ``errors``    -- errors grouped by what the caller should do
"""

__version__ = "0.1.0"
