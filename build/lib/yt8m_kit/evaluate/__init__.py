"""Stage 3, evaluate: predictions and their scores.

metrics (GAP@20, Hit@1, PERR, mAP, written once), ranking (the official tools' tie order), bootstrap
(standard errors of GAP and of paired differences, by resampling videos), predict_loop (a model over a
reader: scores per batch, repeats), prediction_files (the h5 files of predictions the planner reads),
cli (`python -m yt8m_kit.evaluate`).
"""
