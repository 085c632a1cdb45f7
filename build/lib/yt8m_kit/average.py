"""`python -m yt8m_kit.average`: the short name of `python -m yt8m_kit.train.averaging` (the code lives there)."""

import sys

from yt8m_kit.train.averaging import main

if __name__ == "__main__":
    sys.exit(main())
