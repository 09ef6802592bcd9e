"""``python -m rait.rescore RUN_DIR``: the documented command line of :mod:`rait.run.rescore` (re-score a run's
evaluations offline)."""

import sys

from rait.run.rescore import main

if __name__ == "__main__":
    sys.exit(main())
