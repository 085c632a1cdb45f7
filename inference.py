"""Predict the test set and write (and optionally upload) a Kaggle CSV: `python inference.py --help`.

Thin command line; the work is in yt8m_kit/kaggle/inference_job.py.
"""

import sys

from yt8m_kit.kaggle.inference_job import main

if __name__ == "__main__":
    sys.exit(main())
