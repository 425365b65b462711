"""`python -m embed_udfs.cli ...` is `embed-udfs ...`."""

import sys

from embed_udfs.cli import main

sys.exit(main())
