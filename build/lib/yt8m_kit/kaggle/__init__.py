"""Stage 5, kaggle: the submission.

inference_job (what `python inference.py` runs), submission_csv (the Kaggle CSV: write, read,
validate, merge), merge (`python -m yt8m_kit.merge`), upload (the Kaggle API), leaderboard (`--wait`:
poll the uploaded submission until Kaggle scores it).
"""
