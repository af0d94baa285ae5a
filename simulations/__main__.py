"""Entry point: ``python -m simulations run SCENARIO.toml --out DIR``."""

import sys

from ._cli import main

sys.exit(main())
