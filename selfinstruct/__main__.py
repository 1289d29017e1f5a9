"""Allow `python -m selfinstruct`."""

from selfinstruct.cli import main

raise SystemExit(main())
