"""`python -m cosmo` is the `cosmo` command."""

from cosmo.cli import main

raise SystemExit(main())
