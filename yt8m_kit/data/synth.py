"""Generate YouTube-8M-shaped TFRecords with learnable structure, in exactly the real 2018 format.

    python -m yt8m_kit.synth --out DIR --level frame --videos 2000 --seed 0 --shards 4 --classes 100

writes DIR/train0000.tfrecord.., DIR/validate0000.tfrecord.. (labelled), DIR/test0000.tfrecord..
(no "labels" key, as the real test set), DIR/test_solution.csv (the hidden test labels, for
end-to-end checks) and DIR/summary.json (what generate() returns). `--videos` is per split.

The structure (why a model can learn it, and why frame-level ideas help):
- class frequencies follow vocabulary.csv's TrainVideoCount (Zipf law when it is absent);
  `classes=C` keeps only the C most frequent classes (their real indices are kept);
- 1 + Poisson(2) labels per video (about 3);
- each class owns 3 "visual words" (prototype frame vectors); a label is visible only in one
  segment (20-70% of the frames), each of those frames showing one of its words; 20% of the
  classes are audible but invisible (prototype only in the 128 audio dimensions);
- a short "distractor" segment of a non-label class in some videos (mean pooling is fooled);
- lengths: 10% very short (1-5 frames), 5% long (250-360), the rest log-normal (median 70),
  all clipped to max_frames (readers keep at most 300); min_frames=M draws lengths uniformly
  from M..max_frames instead (e.g. 120-330: mean ~225 frames, ~263 KB a record, the real
  frame-level data's size; benchmarks use it).
Everything is drawn from numpy Generators seeded by (seed, split, video index), so the same
arguments give identical bytes, whatever the shard count.

With relations=True (`--relations`) a label is visible only in how two kinds of frames relate: each class
owns two "parts" (prototype frame vectors, 3 words each, rgb and audio), and a video with the label shows a
segment of each (10-35% of its frames apiece, anywhere); every video also shows Poisson(2) decoy parts, each
one part of a different class it does not have (so decoys never complete a pair). A part alone is then no evidence: among the videos that show a
class's part, those with the label are told apart only by the other part being there too (for rare classes
most videos showing a part are decoys). Nothing in it follows one model's internals: any pooling that keeps
which kinds of frames occurred, and a classifier that can combine two of them, can learn it.
"""

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

from yt8m_kit import FEATURE_DIM, NUM_CLASSES, RGB_DIM
from yt8m_kit.errors import ConfigError, cli_main
from yt8m_kit.data.quantization import dequantize, quantize
from yt8m_kit.data.synth_videos import class_world, plain_video, relational_video, relational_world, video_length
from yt8m_kit.fileio import atomic_open, atomic_path

# ../shared/data/... relative to the repository root (yt8m_kit/..).
SPLITS = ("train", "validate", "test")
_SPLIT_CODE = {"train": 1, "validate": 2, "test": 3}


def real_data_dir():
    """Where the real 2018 video-level data is: $YT8M_DATA (a folder holding vocabulary.csv and validate/), else
    ../shared/data/yt8m_2018_video beside this clone. The real-data tests and benches read it too."""
    default = Path(__file__).resolve().parents[3] / "shared" / "data" / "yt8m_2018_video"
    return Path(os.environ.get("YT8M_DATA") or default)


def shared_vocabulary():
    """The real 2018 vocabulary.csv of real_data_dir() when it is there, else None: the command line's
    default (the library never looks for it by itself)."""
    path = real_data_dir() / "vocabulary.csv"
    return path if path.is_file() else None


def class_frequencies(vocabulary=None):
    """(counts (3862,) float64, source str): vocabulary.csv's TrainVideoCount, or a Zipf law when
    vocabulary is None."""
    if vocabulary is not None and Path(vocabulary).is_file():
        counts = np.zeros(NUM_CLASSES)
        with open(vocabulary, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                try:
                    counts[int(row["Index"])] = float(row["TrainVideoCount"])
                except (KeyError, ValueError, IndexError) as e:
                    raise ConfigError(f"{vocabulary}: cannot read Index/TrainVideoCount from row {row.get('Index')!r} ({e}); "
                                      "expected the 2018 vocabulary.csv") from e
        return counts, str(vocabulary)
    if vocabulary is not None:
        raise ConfigError(f"vocabulary file {vocabulary} not found; pass the 2018 vocabulary.csv or omit --vocabulary")
    return 1.0 / np.arange(1, NUM_CLASSES + 1), "zipf"


def frame_example(video_id, labels, rgb_q, audio_q):
    """Serialized tf.train.SequenceExample: context id/labels, feature_lists rgb/audio (raw uint8 bytes).

    labels=None leaves the key out (test set). rgb_q (T, 1024) and audio_q (T, 128) uint8.
    """
    import tensorflow as tf

    context = {"id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[_b(video_id)]))}
    if labels is not None:
        context["labels"] = tf.train.Feature(int64_list=tf.train.Int64List(value=list(labels)))

    def flist(arr):
        return tf.train.FeatureList(feature=[tf.train.Feature(bytes_list=tf.train.BytesList(value=[row.tobytes()]))
                                             for row in arr])

    return tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list={"rgb": flist(rgb_q), "audio": flist(audio_q)}),
    ).SerializeToString()


def video_example(video_id, labels, mean_rgb, mean_audio, id_key="id"):
    """Serialized tf.train.Example: id, labels (omitted when None), mean_rgb float[1024], mean_audio float[128]."""
    import tensorflow as tf

    feature = {
        id_key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[_b(video_id)])),
        "mean_rgb": tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(mean_rgb, np.float32))),
        "mean_audio": tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(mean_audio, np.float32))),
    }
    if labels is not None:
        feature["labels"] = tf.train.Feature(int64_list=tf.train.Int64List(value=list(labels)))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_records(path, records):
    """Write serialized records to a TFRecord file atomically."""
    import tensorflow as tf

    with atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(tmp) as w:
            for r in records:
                w.write(r)


def _b(s):
    return s if isinstance(s, bytes) else str(s).encode("utf-8")


def _make_ids(seed, total):
    """Unique 6-character ids (like the real anonymised ones), in a seeded order."""
    alphabet = np.array(list("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    rng = np.random.default_rng([seed, 99])
    codes = np.unique(rng.integers(0, 62 ** 6, size=total * 2))  # sorted, unique
    codes = rng.permutation(codes)[:total]
    digits = np.stack([(codes // 62 ** i) % 62 for i in range(6)], axis=1)
    return ["".join(row) for row in alphabet[digits]]


def generate(out_dir, level, videos, seed, shards=2, classes=None, vocabulary=None,
             max_frames=360, split_videos=None, progress=False, min_frames=None, relations=False):
    """Write train/validate/test shards to out_dir; return a summary dict (also saved as summary.json).

    relations: labels visible only as the co-occurrence of two parts (the module's docstring).

    videos: per split, unless split_videos={"train": n, "validate": m, "test": k} overrides it.
    classes: keep only the C most frequent classes (None: all 3862). Labels keep their real indices.
    """
    if level not in ("frame", "video"):
        raise ConfigError(f"level must be 'frame' or 'video', got {level!r}")
    if classes is not None and not 1 <= classes <= NUM_CLASSES:
        raise ConfigError(f"classes must be in 1..{NUM_CLASSES}, got {classes}")
    if shards < 1 or max_frames < 1:
        raise ConfigError(f"shards ({shards}) and max_frames ({max_frames}) must be at least 1")
    if min_frames is not None and not 1 <= min_frames <= max_frames:
        raise ConfigError(f"min_frames must be in 1..max_frames ({max_frames}), got {min_frames}")
    counts_split = {s: int(videos) for s in SPLITS}
    counts_split.update(split_videos or {})
    if set(counts_split) != set(SPLITS) or min(counts_split.values()) < 1:
        raise ConfigError(f"each of {SPLITS} needs at least one video, got {counts_split}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    counts, source = class_frequencies(vocabulary)
    order = np.argsort(-counts, kind="stable")
    class_ids = order[: classes or NUM_CLASSES]
    probs = counts[class_ids] / counts[class_ids].sum()
    protos, audio_only = class_world(seed, class_ids)
    parts = relational_world(seed, len(class_ids)) if relations else None
    all_ids = _make_ids(seed, sum(counts_split.values()))

    summary = {"out_dir": str(out_dir), "level": level, "seed": seed, "vocabulary": source,
               "classes": int(len(class_ids)), "class_indices": [int(c) for c in class_ids],
               "audio_only_classes": [] if relations else [int(c) for c in class_ids[audio_only]],
               "relations": bool(relations), "splits": {}}
    solution, id_offset = [], 0
    for split in SPLITS:
        n = counts_split[split]
        n_shards = min(shards, n)
        bounds = np.linspace(0, n, n_shards + 1).astype(int)
        files, total_frames, total_labels = [], 0, 0
        for k in range(n_shards):
            records = []
            for i in range(bounds[k], bounds[k + 1]):
                vid = all_ids[id_offset + i]
                rng = np.random.default_rng([seed, _SPLIT_CODE[split], i])
                n_labels = int(min(1 + rng.poisson(2.0), len(class_ids)))
                pos = rng.choice(len(class_ids), size=n_labels, replace=False, p=probs)
                distractor = None
                if rng.random() < 0.3 and len(class_ids) > n_labels:
                    distractor = int(rng.choice(np.setdiff1d(np.arange(len(class_ids)), pos)))
                labels = sorted(int(class_ids[p]) for p in pos)
                nf = video_length(rng, max_frames, min_frames)
                if relations:
                    q = quantize(relational_video(rng, nf, pos, parts, len(class_ids)))
                else:
                    q = quantize(plain_video(rng, nf, pos, protos, distractor))
                written = labels if split != "test" else None
                if split == "test":
                    solution.append((vid, labels))
                if level == "frame":
                    records.append(frame_example(vid, written, q[:, :RGB_DIM], q[:, RGB_DIM:]))
                else:
                    mean = dequantize(q).mean(axis=0)
                    records.append(video_example(vid, written, mean[:RGB_DIM], mean[RGB_DIM:]))
                total_frames += nf
                total_labels += len(labels)
            path = out_dir / f"{split}{k:04d}.tfrecord"
            write_records(path, records)
            files.append(str(path))
            if progress:
                print(f"wrote {path} ({len(records)} videos)", file=sys.stderr)
        id_offset += n
        summary["splits"][split] = {"files": files, "videos": n, "frames": total_frames,
                                    "labels": total_labels, "labelled": split != "test"}
    with atomic_open(out_dir / "test_solution.csv", "w", newline="") as f:
        f.write("VideoId,Labels\n")
        for vid, labels in solution:
            f.write(f"{vid},{' '.join(map(str, labels))}\n")
    with atomic_open(out_dir / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def build_parser():
    p = argparse.ArgumentParser(prog="python -m yt8m_kit.synth", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output directory (created)")
    p.add_argument("--level", required=True, choices=["frame", "video"],
                   help="frame: SequenceExamples of quantised per-second rgb/audio frames (the 2018 frame-level "
                        "format); video: Examples of mean_rgb/mean_audio (the video-level format)")
    p.add_argument("--videos", type=int, required=True, help="videos per split (train, validate, test)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed: the same seed and options give byte-identical files (default 0)")
    p.add_argument("--shards", type=int, default=2, help="shards per split (default 2)")
    p.add_argument("--classes", type=int, default=None,
                   help="keep only the C most frequent classes (default: all 3862)")
    p.add_argument("--vocabulary", default=None,
                   help="vocabulary.csv for class frequencies, or 'zipf' for a Zipf law over the 3862 classes "
                        "(default: $YT8M_DATA/vocabulary.csv, else ../shared/data/yt8m_2018_video/vocabulary.csv beside this clone, when it exists, "
                        "else zipf; the demo passes zipf so that every clone generates the same data)")
    p.add_argument("--max-frames", type=int, default=360, help="longest video (default 360)")
    p.add_argument("--min-frames", type=int, default=None,
                   help="draw lengths uniformly from MIN..--max-frames (default: the mixed profile above; "
                        "120 with --max-frames 330 gives the real data's ~263 KB a video)")
    p.add_argument("--relations", action="store_true",
                   help="labels visible only as the co-occurrence of two kinds of frames (a class's two parts; "
                        "decoys show one part alone): data for the non-local blocks' claim")
    return p


@cli_main
def main(argv=None):
    a = build_parser().parse_args(argv)
    s = generate(a.out, a.level, a.videos, a.seed, shards=a.shards, classes=a.classes,
                 vocabulary=None if a.vocabulary == "zipf" else (a.vocabulary or shared_vocabulary()),
                 max_frames=a.max_frames, min_frames=a.min_frames, relations=a.relations,
                 progress=True)
    for split, info in s["splits"].items():
        print(f"{split}: {info['videos']} videos, {info['frames']} frames, {len(info['files'])} shards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
