"""Stage 1, data: YouTube-8M TFRecords in, batches of tensors out.

records (files, record headers, format detection), parsing (one batch of records to tensors, with
the checks), quantization (the dataset's 8-bit features), sampling (stateless frame sampling),
ids (video-id checks), dataset (make_dataset: the readers), native/ (C++ ops that read and parse
frame-level records), synth (generated data in the real formats; synth_videos: what
its videos' frames are), inspect (a file report).
"""
