"""``python -m kanpiler``: the same command line as the ``kanpiler`` script.

In: ``sys.argv``. Out: the exit status of ``kanpiler.cli.main``. Stage: cli.
"""

from .cli import main

raise SystemExit(main())
