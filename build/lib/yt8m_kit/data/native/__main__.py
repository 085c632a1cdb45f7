import sys

from yt8m_kit.data.native import main

sys.exit(main())
