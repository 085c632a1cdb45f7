"""`python -m yt8m_kit.upload`: the short name of `python -m yt8m_kit.kaggle.upload` (the code lives there)."""

import sys

from yt8m_kit.kaggle.upload import main

if __name__ == "__main__":
    sys.exit(main())
