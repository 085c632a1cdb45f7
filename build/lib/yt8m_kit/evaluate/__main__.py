import sys

from yt8m_kit.evaluate.cli import main

sys.exit(main())
