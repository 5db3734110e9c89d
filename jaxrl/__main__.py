"""``python -m jaxrl ...`` is the ``jaxrl`` command (works where pip's script directory is not on PATH)."""

import sys

from jaxrl.run.cli import main

sys.exit(main())
