"""`python -m embed_udfs.backfill ...` is `embed-udfs backfill ...`, so that
`torchrun --nproc-per-node=G -m embed_udfs.backfill` starts G sharded workers."""

import sys

from embed_udfs.cli import main

sys.exit(main(["backfill", *sys.argv[1:]]))
