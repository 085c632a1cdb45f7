"""Plan the best ensemble that fits a size budget and write it as one Keras graph: `python submit.py --help`.

Thin command line (`yt8m submit` once installed); the work is in yt8m_kit/ensemble/submit_cli.py and submit_job.py.
"""

import sys

from yt8m_kit.ensemble.submit_cli import BUDGET_HELP, build_parser, main, parse_config  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
