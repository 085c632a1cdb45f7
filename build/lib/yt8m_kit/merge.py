"""`python -m yt8m_kit.merge`: the short name of `python -m yt8m_kit.kaggle.merge` (the code lives there)."""

import sys

from yt8m_kit.kaggle.merge import main

if __name__ == "__main__":
    sys.exit(main())
