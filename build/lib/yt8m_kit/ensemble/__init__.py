"""Stage 4, ensemble: choose members and precisions under a size budget; build one graph.

precision (the storage precisions: float32, bfloat16, int8), search (plans and their search, pure),
noise (the video split, the rule that keeps a choice only beyond its bootstrap noise, the held-out
report), weighting (one weight per member, kept only when it wins on videos it was not fitted on),
candidates (every run at every precision, with its validation predictions and exact bytes),
artifact (the one-graph ensemble model, its layers, save, load and the check that an artifact's files
belong together), summary (the printed tables and plan.png), submit_job (what `python submit.py` runs).
"""
