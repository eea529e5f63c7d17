"""The IronLB Pulumi program (``pulumi up -s dev``): read the stack config, parse, build.

All logic lives in ``ironlb.components.program``; this file only exports what it returns.
"""

import pulumi

from ironlb.components.program import run

for _key, _value in sorted(run(pulumi.Config("ironlb")).items()):
    pulumi.export(_key, _value)
