"""Entry point of the IronLB component provider plugin (see components/provider.py).

The engine runs ``<venv>/bin/python <this directory> <engine address>``; the provider
prints the port it serves on, and the engine talks gRPC to it from there.
"""

from ironlb.components.provider import main

if __name__ == "__main__":
    main()
