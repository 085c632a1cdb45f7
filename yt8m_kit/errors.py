"""Errors that every command line turns into one clear message and a non-zero exit."""

import errno
import functools
import signal
import sys
import threading


class Yt8mError(Exception):
    """Base class: a problem the user can fix; CLIs print it without a traceback."""


class DataError(Yt8mError, ValueError):
    """A record or file that cannot be read as YouTube-8M; names file, record and value."""

    def __init__(self, message, file=None, record=None, value=None):
        self.file, self.record, self.value, self.reason = file, record, value, message  # reason: without where
        where = []
        if file is not None:
            where.append(f"file {file}")
        if record is not None:
            where.append(f"record {record}")
        prefix = (", ".join(where) + ": ") if where else ""
        suffix = f" (value: {value!r})" if value is not None else ""
        super().__init__(prefix + message + suffix)


class ConfigError(Yt8mError, ValueError):
    """A configuration, checkpoint or command-line value that does not fit."""


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full_message(error, path=None):
    """The message for a write that ran out of space (ENOSPC, or a quota)."""
    where = path or getattr(error, "filename", None)
    return (f"no space left on the device{f' writing {where}' if where else ''} ({error.strerror or error}): "
            "free some space and rerun; outputs are written atomically, so the previous ones were kept and "
            "no partial file was left behind")


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and `timeout` send), raised where SIGINT raises KeyboardInterrupt, so that
    every atomic writer removes its temporary and the command ends as on Ctrl-C (exit 143, not 130)."""


def _raise_terminated(signum, frame):
    raise Terminated()


def cli_main(fn):
    """Decorate a CLI main(argv): the process settings of yt8m_kit.runtime are applied first, and a
    Yt8mError, or a full disk (OSError ENOSPC/EDQUOT), exits 2 with its message and no traceback. Ctrl-C and
    SIGTERM interrupt alike: temporaries removed, one line said, exit 130 or 143."""

    @functools.wraps(fn)
    def wrapper(argv=None):
        from yt8m_kit.runtime import configure_process

        configure_process()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return fn(argv)
        except Yt8mError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as e:
            print("interrupted: no partial output was written", file=sys.stderr)
            return 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
        except OSError as e:
            if e.errno not in DISK_FULL:
                raise
            print(f"error: {disk_full_message(e)}", file=sys.stderr)
            return 2
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper
