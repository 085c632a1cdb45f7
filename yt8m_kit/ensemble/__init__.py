"""Stage 4, ensemble: choose members and precisions under a size budget; build one graph.

precision (the storage precisions: float32, bfloat16, int8), search (plans and their search, pure),
candidates (every run at every precision, with its validation predictions and exact bytes), artifact
(the one-graph ensemble model, its layers, save and load), submit_job (what `python submit.py` runs).
"""
