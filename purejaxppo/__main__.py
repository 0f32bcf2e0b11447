"""`python -m purejaxppo ...`: the same command line as `purejaxppo` (see `purejaxppo.cli`)."""

import sys

from purejaxppo.cli import main

sys.exit(main())
