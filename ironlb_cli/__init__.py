"""The ``ironlb`` command: validate, render, plan, status, demo.

Each subcommand is a module in this package with a ``register(subparsers)`` function;
``main`` discovers them.  The CLI is the one layer allowed to import every other package
(schema, components, agent, lab).
"""
