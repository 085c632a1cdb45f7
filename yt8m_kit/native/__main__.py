import sys

from yt8m_kit.native import main

sys.exit(main())
