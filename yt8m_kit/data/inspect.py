"""Check and summarise YouTube-8M TFRecords: files, videos, frames, level, version, labels, damage.

    python -m yt8m_kit.inspect 'data/train*.tfrecord' [--json]

Every record's length and CRC is checked, and every readable record is parsed and validated
as the readers do (id, frame counts, byte lengths, label range). Exit status 0 only when all
records are readable and valid; 1 when some are not (they are listed under "corrupt");
2 for a bad pattern or a first record that is not YouTube-8M at all.
JSON keys: files, videos, frames, level, version, labels_per_video, corrupt (list of
{file, record, error}), duplicate_ids, per_file (list of {file, videos, frames, error}), ok.
"""

import argparse
import json
import sys

from yt8m_kit.errors import cli_main


def inspect_files(pattern, progress=False):
    """Return the report dict described in the module docstring (2017 files are reported, not refused)."""
    import numpy as np
    import tensorflow as tf

    from yt8m_kit.data import dataset as data
    from yt8m_kit.data import parsing
    from yt8m_kit.data.records import op_error_text

    files = data.list_files(pattern)
    info = data.detect_format(files, allow_2017=True)
    per_file, corrupt, seen, dups = [], [], set(), []
    videos = frames = labels = 0
    bar = None
    if progress:
        from yt8m_kit.progress import Progress

        bar = Progress(len(files), "file", quiet_if_not_tty=True)  # a report follows
    for k, f in enumerate(files):
        count, err = data.scan_file(f)
        if err:
            corrupt.append({"file": f, "record": count, "error": f"unreadable (CRC or truncation): {err}"})
        ds = tf.data.TFRecordDataset(f).take(count).batch(512).map(
            lambda s: parsing.parse_batch(s, info, require_labels=False))
        f_frames, record = 0, 0
        try:
            for parts, reason, value in ds:
                reason, value = reason.numpy(), value.numpy()
                for j in np.flatnonzero(reason != b""):
                    corrupt.append({"file": f, "record": record + int(j),
                                    "error": f"{reason[j].decode()} (value: {value[j].decode()})"})
                for j, vid in enumerate(parts["id"].numpy()):
                    if vid in seen:
                        dups.append({"file": f, "record": record + j, "id": vid.decode("utf-8", "replace")})
                    seen.add(vid)
                labels += int(parts["labels"].numpy().sum())
                if info.level == "frame":
                    f_frames += int(parts["rgb"].row_lengths().numpy().sum())
                record += len(reason)
        except tf.errors.OpError as e:  # a record that is not a protobuf at all
            corrupt.append({"file": f, "record": record, "error": op_error_text(e, f)})
        videos += count
        frames += f_frames
        per_file.append({"file": f, "videos": count, "frames": f_frames if info.level == "frame" else None,
                         "error": err})
        if bar is not None:
            bar.update(k + 1)
    return {"files": len(files), "videos": videos, "frames": frames if info.level == "frame" else None,
            "level": info.level, "version": info.version,
            "labels_per_video": round(labels / videos, 4) if videos else 0.0,
            "corrupt": corrupt, "duplicate_ids": dups[:100], "per_file": per_file,
            "ok": not corrupt and not dups}


def format_report(r):
    """A short human-readable table."""
    lines = [f"{'file':<60} {'videos':>8} {'frames':>10}  status"]
    for p in r["per_file"]:
        frames = "-" if p["frames"] is None else str(p["frames"])
        name = p["file"] if len(p["file"]) <= 60 else "..." + p["file"][-57:]
        lines.append(f"{name:<60} {p['videos']:>8} {frames:>10}  {'CORRUPT' if p['error'] else 'ok'}")
    lines.append(f"{r['files']} files, {r['videos']} videos, "
                 + (f"{r['frames']} frames, " if r["frames"] is not None else "")
                 + f"{r['level']}-level, {r['version']} schema, {r['labels_per_video']} labels per video")
    for c in r["corrupt"][:20]:
        lines.append(f"BAD {c['file']} record {c['record']}: {c['error']}")
    if len(r["corrupt"]) > 20:
        lines.append(f"... and {len(r['corrupt']) - 20} more bad records")
    for d in r["duplicate_ids"][:5]:
        lines.append(f"DUPLICATE id {d['id']!r} at {d['file']} record {d['record']}")
    lines.append("all records readable" if r["ok"] else "NOT all records are readable and valid")
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(prog="python -m yt8m_kit.inspect", description=__doc__.split("\n\n")[0],
                                epilog="Exit status: 0 when every record is readable and valid, 1 when some are "
                                       "not (listed), 2 for a bad pattern or files that are not YouTube-8M.")
    p.add_argument("pattern", help="glob of TFRecord files, comma-separated globs allowed")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


@cli_main
def main(argv=None):
    a = build_parser().parse_args(argv)
    r = inspect_files(a.pattern, progress=not a.json and sys.stderr.isatty())
    print(json.dumps(r, indent=1) if a.json else format_report(r))
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
