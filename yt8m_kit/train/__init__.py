"""Stage 2, train: a registered model trained on TFRecords into a run directory of checkpoints.

config (TrainConfig, run.json, how settings are resolved), loop (the training loop), trainer
(train(config), the strategy), checkpoint (the run directory's files), averaging (checkpoint
averaging), cli (`python -m yt8m_kit.train`).
"""
