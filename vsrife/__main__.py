"""``python -m vsrife``: the user CLI."""

from vsrife.cli import main

raise SystemExit(main())
