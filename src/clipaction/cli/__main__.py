"""`python -m clipaction.cli ...` is `clipaction ...`."""

import sys

from clipaction.cli import main

sys.exit(main())
