"""`python -m yt8m_kit <stage> ...`: the `yt8m` command from a clone (yt8m_kit/cli.py)."""

import sys

from yt8m_kit.cli import main

if __name__ == "__main__":
    sys.exit(main())
