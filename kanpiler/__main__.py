"""``python -m kanpiler``: the same command line as the ``kanpiler`` script."""

from .cli import main

raise SystemExit(main())
