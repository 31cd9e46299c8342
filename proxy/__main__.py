"""`python -m proxy` runs the progimage command."""

from .cli import main

raise SystemExit(main())
