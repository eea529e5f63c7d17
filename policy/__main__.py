"""Build and serve the IronLB policy pack (``pulumi preview --policy-pack policy``).

``PolicyPack`` starts a gRPC server and blocks, so it is built only here; the policies
themselves live in ``policies.py`` and are unit-tested without it.
"""

from pulumi_policy import PolicyPack

try:  # run by the Pulumi CLI from inside policy/
    from policies import POLICIES
except ImportError:  # run as ``python -m policy`` from the repository root
    from policy.policies import POLICIES

PolicyPack(name="ironlb", policies=POLICIES)
