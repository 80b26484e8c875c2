"""The package version (read by the build backend and ``kanpiler --version``).

In: nothing. Out: ``__version__``. Stage: errors (imports nothing).
"""

__version__ = "0.2.0"
