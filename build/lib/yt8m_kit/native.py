"""`python -m yt8m_kit.native`: the short name of `python -m yt8m_kit.data.native` (the code lives there)."""

import sys

from yt8m_kit.data.native import main

if __name__ == "__main__":
    sys.exit(main())
