"""`python -m yt8m_kit.inspect`: the short name of `python -m yt8m_kit.data.inspect` (the code lives there)."""

import sys

from yt8m_kit.data.inspect import main

if __name__ == "__main__":
    sys.exit(main())
