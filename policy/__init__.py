"""IronLB's CrossGuard policy pack: the policies are in :mod:`policy.policies`."""
