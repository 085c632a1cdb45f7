"""Stage 2, train: a registered model trained on TFRecords into a run directory of checkpoints.

config (TrainConfig, run.json, how settings are resolved), loop (the training loop), trainer
(train(config), the strategy), checkpoint (the run directory's files), train_state (a checkpoint's
optimizer and RNG state, for exact resumes), averaging (checkpoint averaging), bn_update (batch-norm
statistics recomputed for averaged weights), ema (weight EMA, `--ema`, written as ckpt-ema), distill (offline distillation, `--teacher`), cli (`python -m yt8m_kit.train`).
"""
