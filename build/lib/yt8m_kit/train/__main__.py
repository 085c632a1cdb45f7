import sys

from yt8m_kit.train.cli import main

sys.exit(main())
