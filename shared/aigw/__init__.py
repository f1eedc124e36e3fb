"""aigw: a serverless, Portkey-compatible AI gateway.

The package is the shared Lambda layer: handlers in ``functions/`` import from it, and
so do the local server and the Azure shell. Importing ``aigw`` itself is cheap.
"""

__version__ = "0.1.0"
