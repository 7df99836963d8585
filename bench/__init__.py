"""Benchmarks: the system's costs measured side by side in one run (``make bench``).

Every figure is a ratio or a distribution measured in the same run against the real stack
(Temporal dev server, services, gateway and BFFs each in its own process), so the machine's
noise cancels as far as it can. Nothing here is asserted by the test suite.
"""
