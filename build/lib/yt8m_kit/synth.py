"""`python -m yt8m_kit.synth`: the short name of `python -m yt8m_kit.data.synth` (the code lives there)."""

import sys

from yt8m_kit.data.synth import main

if __name__ == "__main__":
    sys.exit(main())
