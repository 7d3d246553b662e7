"""reconciler: third-party integration connections as code.

Desired state (catalog + manifests + environment) is diffed against the database; ``plan``
shows the difference and ``apply`` makes it so. See ``reconciler.core`` for the pure core.
"""

__version__ = "0.1.0"
