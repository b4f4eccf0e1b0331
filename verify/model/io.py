"""The boundary: every byte pgverify reads from a user's file and every file it writes goes through here.

Reading: only regular files (a FIFO, /dev/zero or /dev/urandom is refused before the first read, so nothing
blocks or reads forever), at most ``Limits.max_file_bytes`` bytes, UTF-8 (an error names the byte offset), JSON
nested at most ``MAX_DEPTH`` levels, no duplicate keys, no unpaired surrogates. Integers of more than
``MAX_INT_DIGITS`` digits, overflowing floats (1e400), NaN and Infinity are read as floats (never ``int()`` of
4 000 digits) so that the schema validation refuses each where it sits, naming the entry (``horizon`` must be an
integer; ``rewards[1][0]`` must be finite). ``.npy`` arrays: real numbers only, size checked from the header before the data is read.

Budgets: ``Limits`` (memory in bytes, work in elementary steps) holds the ceilings a command may use; the CLI
sets them from ``--max-memory``/``--max-work`` with ``limits_scope`` and the loaders and commands call
``require_memory``/``require_work`` with sizes computed from declared dimensions, *before* allocating.

Writing: ``check_output_path`` refuses an unusable target before any work (empty, a directory, a missing or
unwritable directory, an existing file without ``force``); ``atomic_write`` writes a temporary file in the same
directory and then renames it (``force``) or hard-links it into place, which fails if the name exists by then,
so of two concurrent runs without ``force`` exactly one succeeds and a Ctrl-C never leaves a partial file.
``safe_filename`` turns names taken from files into one path component.

Every refusal is a ``UsageError``/``InvalidMDPError``: one line, exit 2 in the CLI.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
import gc
import json
import math
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

from verify._lazy import LazyModule
from verify.errors import InvalidMDPError, UsageError

if TYPE_CHECKING:
    import numpy as np
else:   # the CLI builds its parser from this module's limits: `pgverify --help` loads no numpy (verify/_lazy.py)
    np = LazyModule("numpy")

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_ABS_VALUE",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "Limits",
    "WorkMeter",
    "atomic_write",
    "atomic_write_with",
    "check_output_path",
    "current_limits",
    "describe_value",
    "format_bytes",
    "limits_scope",
    "load_json_text",
    "numeric_array",
    "parse_size",
    "read_json_file",
    "read_npy_file",
    "read_regular_file",
    "require_memory",
    "require_work",
    "safe_filename",
    "work_meter",
]

MAX_DEPTH = 64             # the MDP format nests 4 levels; 64 leaves room for descriptions without recursion risk
MAX_INT_DIGITS = 18        # |n| < 10^18 stays an int (fits int64); longer integer literals are read as floats
MAX_ABS_VALUE = 1e100      # rewards, theta, features: squares and sums of 10^6 x 10^6 squares stay finite
GiB = 2**30


@dataclass(frozen=True)
class Limits:
    """Ceilings checked before work: bytes a command may allocate, elementary steps it may take, input size.

    ``max_work`` counts the unit of the costliest loop: sampled steps (episodes x step cap), enumerated
    trajectory steps, DP state-action updates (H x S x A x successors).
    """

    max_memory: int = 2 * GiB
    max_work: int = 10**10
    max_file_bytes: int = 512 * 2**20


DEFAULT_LIMITS = Limits()
_LIMITS: contextvars.ContextVar[Limits] = contextvars.ContextVar("pgverify_limits", default=DEFAULT_LIMITS)


def current_limits() -> Limits:
    """The limits in force (``DEFAULT_LIMITS`` unless inside ``limits_scope``)."""
    return _LIMITS.get()


class WorkMeter:
    """Elementary steps counted as they run, against ``Limits.max_work`` (one meter per ``limits_scope``).

    ``require_work`` refuses a job whose size is known before it starts; the meter bounds the jobs whose size is
    only known while they run (episodes of a horizon-null MDP end when they reach a terminal state).
    """

    __slots__ = ("limit", "used", "started")

    def __init__(self, limit: float) -> None:
        self.limit, self.used = float(limit), 0.0
        self.started = time.process_time()      # a refusal says what the steps cost before it (CPU of this process)

    def remaining(self) -> float:
        return self.limit - self.used

    def charge(self, steps: float, what: str) -> None:
        """Add ``steps``; refuse (UsageError) once the total passes the limit."""
        self.used += steps
        if not self.used <= self.limit:
            cpu = time.process_time() - self.started
            raise UsageError(f"{what} stopped after {self.used:.3g} steps, more than the work limit "
                             f"{self.limit:.2g} ({cpu:.2g} CPU-s spent; raise it with --max-work)")


_METER: contextvars.ContextVar[WorkMeter | None] = contextvars.ContextVar("pgverify_work_meter", default=None)


def work_meter() -> WorkMeter:
    """The meter of the enclosing ``limits_scope``; outside one, a fresh meter per call (per API call)."""
    meter = _METER.get()
    return meter if meter is not None else WorkMeter(current_limits().max_work)


@contextlib.contextmanager
def limits_scope(limits: Limits) -> Iterator[Limits]:
    """Run a block under ``limits`` (the CLI wraps each command in one) with a fresh ``WorkMeter``."""
    token = _LIMITS.set(limits)
    meter_token = _METER.set(WorkMeter(limits.max_work))
    try:
        yield limits
    finally:
        _METER.reset(meter_token)
        _LIMITS.reset(token)


_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
          "g": GiB, "gb": GiB, "gib": GiB, "t": 2**40, "tb": 2**40, "tib": 2**40}


def parse_size(text: str) -> int:
    """A byte count such as ``512M``, ``4G``, ``1.5GiB`` or ``1000000`` (binary units).

    >>> parse_size("4G"), parse_size("512m"), parse_size("1024")
    (4294967296, 536870912, 1024)
    """
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 512M, 4G, 1000000)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not 1 <= value <= 2**62:
        raise ValueError(f"size {text!r} is out of range (1 byte to 4 EiB)")
    return int(value)


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. ``44.7 GiB``.

    >>> format_bytes(48000000000), format_bytes(100)
    ('44.7 GiB', '100 B')
    """
    if not math.isfinite(n):        # an overflowed size estimate (require_memory refuses it, naming it)
        return f"{n} B"
    for unit, size in (("TiB", 2**40), ("GiB", GiB), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def require_memory(nbytes: float, what: str) -> None:
    """Refuse before allocating ``nbytes`` when it exceeds the memory limit; ``what`` says what needs it.

    >>> with limits_scope(Limits(max_memory=2**30)):
    ...     require_memory(48e9, "the DP table [H=10^9, S=3, A=2]")
    Traceback (most recent call last):
    ...
    verify.errors.UsageError: the DP table [H=10^9, S=3, A=2] needs 44.7 GiB, more than the memory limit 1.0 GiB \
(raise it with --max-memory)
    """
    limit = current_limits().max_memory
    if not nbytes <= limit:        # also refuses nan
        raise UsageError(f"{what} needs {format_bytes(nbytes)}, more than the memory limit {format_bytes(limit)} "
                         "(raise it with --max-memory)")


def require_work(steps: float, what: str) -> None:
    """Refuse before starting ``steps`` elementary steps when they exceed the work limit.

    >>> require_work(118059162071 * 100, "sampling 118059162071 episodes x 100 steps")
    Traceback (most recent call last):
    ...
    verify.errors.UsageError: sampling 118059162071 episodes x 100 steps is 1.2e+13 steps, more than the work \
limit 1e+10 (raise it with --max-work)
    """
    limit = current_limits().max_work
    if not steps <= limit:
        raise UsageError(f"{what} is {steps:.2g} steps, more than the work limit {limit:.2g} "
                         "(raise it with --max-work)")


# --- reading ------------------------------------------------------------------------------------------------------

def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO/pipe"), (stat.S_ISCHR,
                       "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: str | os.PathLike, what: str, *, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file, at most ``max_bytes`` (default ``Limits.max_file_bytes``).

    Opened non-blocking so a FIFO without a writer cannot hang the open; anything but a regular file is refused
    before reading (``/dev/zero`` and ``/dev/urandom`` never end).

    Raises:
      UsageError: naming ``what``, the path and the reason.
    """
    limit = current_limits().max_file_bytes if max_bytes is None else max_bytes
    name = os.fspath(path)
    if name == "":
        raise UsageError(f"{what}: the path is empty")
    if "\0" in name:
        raise UsageError(f"{what} {name!r}: a path cannot contain a NUL character")
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(f"cannot read {what} {name!r}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{what} {name!r} is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise UsageError(f"{what} {name!r} has {format_bytes(st.st_size)}, more than the input limit "
                             f"{format_bytes(limit)}")
        chunks, total = [], 0
        while True:                 # the size may change under us: never read more than the limit
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise UsageError(f"{what} {name!r} grew beyond the input limit {format_bytes(limit)} while read")
        return b"".join(chunks)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {name!r}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


class _JSONRefusal(Exception):
    """Raised by the parse hooks; carries the message (json's own errors carry positions)."""


def _parse_int(text: str) -> int | float:
    # Never int() a long digit string (CPython refuses beyond 4300 digits, and it is quadratic below): more than
    # MAX_INT_DIGITS digits become a float (inf beyond 1e308), which the schema refuses where an integer is
    # required and the finiteness check refuses where a finite number is, each naming the entry.
    if len(text) > MAX_INT_DIGITS + 1 or len(text.lstrip("-")) > MAX_INT_DIGITS:
        return float(text)
    return int(text)


def _parse_constant(text: str) -> float:
    # NaN/Infinity are not JSON; kept as floats so the validator names the entry they sit in (and refuses them).
    return float(text)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _JSONRefusal(f"duplicate key {key!r} in one object")
        out[key] = value
    return out


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


_ESCAPED_BACKSLASH, _ESCAPED_QUOTE = b"\\\\", b'\\"'
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_COMPACT_STRING = re.compile(rb'"[^"]*"')
_DIGITS_AS_ZERO = bytes(48 if 48 <= b <= 57 else b for b in range(256))
_ZEROS = re.compile(rb"0+")


def _has_long_integer(data: bytes) -> bool:
    """Whether an integer literal of more than MAX_INT_DIGITS digits may occur (runs in strings are false alarms).

    Digits are mapped to ``0`` (C-level translate) and runs found with ``bytes.find``; a run is a fraction or an
    exponent when a ``.``, ``e``/``E`` (after it) or ``.``, ``e``, ``+``, ``e-`` (before it) says so.
    """
    z = data.translate(_DIGITS_AS_ZERO)
    needle = b"0" * (MAX_INT_DIGITS + 1)
    i = z.find(needle)
    while i >= 0:
        j = _ZEROS.match(z, i).end()
        before, after = z[i - 1:i], z[j:j + 1]
        fraction = after in (b".", b"e", b"E") or before in (b".", b"e", b"E", b"+") \
            or before == b"-" and z[i - 2:i - 1] in (b"e", b"E")
        if not fraction:
            return True
        i = z.find(needle, j)
    return False


def _depth_profile(text: str) -> tuple[int, int]:
    """(maximum depth, index of the first bracket reaching it) over ``text``, strings skipped; exact positions."""
    spans = _STRING.sub(lambda m: " " * len(m.group()), text) if '"' in text else text
    brackets = np.frombuffer(spans.encode("latin-1", "replace"), dtype=np.uint8)
    depth = np.cumsum(np.isin(brackets, (91, 123)).astype(np.int32) - np.isin(brackets, (93, 125)))
    if depth.size == 0:
        return 0, 0
    i = int(np.argmax(depth))
    return int(depth[i]), i


def _nesting_depth(text: str, data: bytes | None = None) -> tuple[int, int]:
    """(maximum depth of [ and {, the index of the first bracket reaching it), strings skipped.

    The depth comes from the structural bytes alone: escaped backslashes and quotes are dropped, every byte but
    brackets and quotes deleted (C-level ``bytes.translate``), then strings (now bracket-only) removed; numpy sums
    what is left. Only a document over the limit is scanned again for the character index of the message.
    """
    raw = text.encode("utf-8", "surrogatepass") if data is None else data
    compact = raw.replace(_ESCAPED_BACKSLASH, b"").replace(_ESCAPED_QUOTE, b"").translate(None, _NOT_STRUCTURE)
    if b'"' in compact:
        compact = _COMPACT_STRING.sub(b"", compact)
    brackets = np.frombuffer(compact, dtype=np.uint8)
    if brackets.size == 0:
        return 0, 0
    step = np.where((brackets == 91) | (brackets == 123), np.int32(1), np.int32(-1))
    return int(np.cumsum(step).max()), -1


def load_json_text(data: bytes, where: str, *, max_depth: int = MAX_DEPTH):
    """Parse JSON bytes strictly: UTF-8, bounded nesting, no duplicate keys; long integers read as floats.

    >>> load_json_text(b'{"a": 1, "a": 2}', "f.json")
    Traceback (most recent call last):
    ...
    verify.errors.InvalidMDPError: f.json: not accepted: duplicate key 'a' in one object
    >>> load_json_text(b'\\xff{}', "f.json")
    Traceback (most recent call last):
    ...
    verify.errors.InvalidMDPError: f.json: not UTF-8 text: byte 0xff at offset 0 (invalid start byte)

    Raises:
      InvalidMDPError: naming ``where`` and the problem (with a byte offset or line/column where known).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMDPError(f"{where}: not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                              f"({exc.reason})") from None
    text = text.removeprefix("\ufeff")
    # Python objects of a parsed number cost ~32 bytes for ~4 bytes of text: refuse what cannot be held.
    require_memory(10.0 * len(data), f"parsing {where} ({format_bytes(len(data))} of JSON)")
    depth, at = _nesting_depth(text, data)
    if depth > max_depth:
        depth, at = _depth_profile(text)
        raise InvalidMDPError(f"{where}: nested more than {max_depth} levels deep (at character {at})")
    try:
        # The per-integer hook is needed only where a run of more than MAX_INT_DIGITS digits exists (a C-level
        # search; a false alarm inside a string or a fraction only costs the slower parse).
        # Parsing makes no reference cycles: the cyclic collector, triggered again and again by millions of new
        # lists, would only re-walk them (40 % of the time of a 50 MB file).
        enabled = gc.isenabled()
        gc.disable()
        try:
            value = json.loads(text, parse_int=_parse_int if _has_long_integer(data) else None,
                               parse_constant=_parse_constant, object_pairs_hook=_no_duplicates)
        finally:
            if enabled:
                gc.enable()
    except _JSONRefusal as exc:
        raise InvalidMDPError(f"{where}: not accepted: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InvalidMDPError(f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:      # pragma: no cover - the depth check comes first
        raise InvalidMDPError(f"{where}: nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text):     # json decodes paired escapes to one character: what is left is lone
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidMDPError(f"{where}: a string holds an unpaired UTF-16 surrogate "
                                  f"\\u{ord(exc.object[exc.start]):04x}") from None
    return value


def read_json_file(path: str | os.PathLike, what: str = "file"):
    """``load_json_text`` of a regular file read with ``read_regular_file``."""
    return load_json_text(read_regular_file(path, what), os.fspath(path))


def read_npy_file(path: str | os.PathLike, what: str = "--theta file") -> np.ndarray:
    """A real float64 array from a ``.npy`` file; header checked (dtype, size) before the data is read.

    Refuses pickled objects, complex, structured and non-numeric dtypes, and non-finite entries.

    Raises:
      UsageError: the file cannot be read; InvalidMDPError: the content is not a finite real array.
    """
    import io as _io

    raw = read_regular_file(path, what)
    name = os.fspath(path)
    buf = _io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(buf)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(buf)
    except (ValueError, SyntaxError, OSError, TypeError) as exc:
        raise InvalidMDPError(f"{what} {name!r} is not a .npy array: {str(exc).splitlines()[0][:200]}") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        kind = "complex" if dtype.kind == "c" else str(dtype)
        raise InvalidMDPError(f"{what} {name!r} holds {kind} values; theta must be real numbers")
    size = math.prod(shape)
    if size * dtype.itemsize > len(raw):
        raise InvalidMDPError(f"{what} {name!r} declares shape {shape} but holds fewer bytes than that needs")
    require_memory(8.0 * size, f"{what} {name!r} of shape {shape}")
    buf.seek(0)
    try:
        arr = np.load(buf, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidMDPError(f"{what} {name!r} is not a readable .npy array: {str(exc).splitlines()[0][:200]}") from None
    if arr.dtype == bool:
        raise InvalidMDPError(f"{what} {name!r} holds booleans; theta must be real numbers")
    arr = arr.astype(float)
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        raise InvalidMDPError(f"{what} {name!r}: entry {tuple(int(i) for i in bad[0])} is not finite")
    big = np.argwhere(np.abs(arr) > MAX_ABS_VALUE)
    if big.size:
        raise InvalidMDPError(f"{what} {name!r}: entry {tuple(int(i) for i in big[0])} is above "
                              f"{MAX_ABS_VALUE:g} in magnitude (squares overflow)")
    return arr


# --- writing ------------------------------------------------------------------------------------------------------

def check_output_path(path: str | os.PathLike | None, *, force: bool = False, what: str = "output file") -> Path:
    """The output path, validated before any work: usable now and not clobbering without ``force``.

    Refuses an empty path, a NUL, a name longer than 255 bytes, a directory, an existing file (or dangling link)
    without ``force``, an existing non-regular file even with ``force`` (never replace /dev/null), a missing
    parent directory and one where a file cannot be created (probed by creating and removing a temporary file,
    which also catches /proc and read-only mounts, whatever the permission bits say).

    Raises:
      UsageError: one line naming the path and the reason.
    """
    name = "" if path is None else os.fspath(path)
    if name == "":
        raise UsageError(f"{what}: the path is empty")
    if "\0" in name:
        raise UsageError(f"{what} {name!r}: a path cannot contain a NUL character")
    out = Path(name)
    if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in out.parts):
        raise UsageError(f"{what} {name[:60]!r}...: a file name is longer than 255 bytes")
    prefix, suffix = _temp_affixes(out)
    if len((prefix + "x" * 8 + suffix).encode("utf-8", "surrogateescape")) > 255:
        raise UsageError(f"{what} {name[:60]!r}...: its extension ({len(out.suffix)} characters) leaves no room "
                         "for the temporary file written beside it (255 bytes per name)")
    if name.endswith(os.sep) or os.path.isdir(out):
        raise UsageError(f"{what} {name!r} is a directory; give a file name")
    if os.path.lexists(out):
        if not force:
            dangling = out.is_symlink() and not out.exists()
            raise UsageError(f"{name} exists{' (a dangling symbolic link)' if dangling else ''}; "
                             "pass --force to overwrite it")
        try:
            mode = os.stat(out).st_mode
        except OSError:
            mode = stat.S_IFREG     # a dangling link is replaced by the rename
        if not stat.S_ISREG(mode):
            raise UsageError(f"{what} {name!r} is {_kind(mode)}; pgverify only replaces regular files")
    parent = out.parent
    if not parent.is_dir():
        raise UsageError(f"directory {str(parent)!r} of {what} {name!r} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".pgverify-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {name!r}: {exc.strerror or exc} (directory {str(parent)!r})") from None
    return out


def _temp_affixes(out: Path) -> tuple[str, str]:
    """``atomic_write``'s temporary name around mkstemp's 8 random characters: the suffix keeps the extension
    (writers such as matplotlib pick the format from it)."""
    return f".{out.name[:100]}.", f".tmp{out.suffix}"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], None], *, force: bool = False,
                      what: str = "output file") -> Path:
    """Let ``write(tmp)`` fill a temporary file beside ``path``, then put it in place atomically.

    With ``force`` the temporary file is renamed over ``path``; without, it is hard-linked to ``path``, which fails
    if ``path`` exists at that moment (create-if-absent), so a concurrent writer can never be silently replaced.
    Any failure or interrupt (Ctrl-C) removes the temporary file: no partial output is ever visible.

    Raises:
      UsageError: the target exists (without ``force``) or cannot be written.
    """
    out = check_output_path(path, force=force, what=what)
    prefix, suffix = _temp_affixes(out)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=prefix, suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        if force:
            os.replace(tmp, out)
        else:
            _link_exclusive(tmp, out)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {os.fspath(out)!r}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return out


def _link_exclusive(tmp: Path, out: Path) -> None:
    try:
        os.link(tmp, out)
        return
    except FileExistsError:
        raise UsageError(f"{out} exists (created while this run worked); pass --force to overwrite it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
    # No hard links on this file system: reserve the name exclusively, then rename over the reservation.
    try:
        os.close(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        raise UsageError(f"{out} exists (created while this run worked); pass --force to overwrite it") from None
    os.replace(tmp, out)


def atomic_write(path: str | os.PathLike, data: str | bytes, *, force: bool = False,
                 what: str = "output file") -> Path:
    """Write ``data`` (str as UTF-8) to ``path`` atomically; exclusive without ``force`` (see ``atomic_write_with``).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(d / "a.txt", "one").read_text()
    'one'
    >>> atomic_write(d / "a.txt", "two")
    Traceback (most recent call last):
    ...
    verify.errors.UsageError: ... exists; pass --force to overwrite it
    """
    payload = data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write_with(path, write, force=force, what=what)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str, *, default: str = "mdp", max_length: int = 80) -> str:
    """One path component made from ``name`` (e.g. an MDP's ``name``): ASCII letters, digits, ``._-`` only.

    Separators, NUL, control characters, surrogates and spaces become ``_``; leading dots are dropped (no hidden
    files, no ``..``); a name shortened to ``max_length`` keeps a hash of the original so distinct names stay
    distinct.

    >>> safe_filename("a/b"), safe_filename("../x"), safe_filename("\\x00"), safe_filename("FrozenLake-v1")
    ('a_b', 'x', 'mdp', 'FrozenLake-v1')
    >>> len(safe_filename("n" * 300))
    80
    """
    clean = _UNSAFE.sub("_", str(name)).lstrip("._")
    clean = clean.strip("_") or default
    if len(clean) > max_length:
        import hashlib      # here: loading OpenSSL costs every command's start-up ~2 ms, and only long names need it

        digest = hashlib.sha256(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:8]
        clean = f"{clean[:max_length - 9]}-{digest}"
    return clean


# --- numeric arrays of a JSON document ---

_JSON_TYPES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
               dict: "an object", type(None): "null"}


def describe_value(value) -> str:
    """A one-line description of a JSON value for messages (never the whole of a big list)."""
    if isinstance(value, (list, dict)):
        return f"{_JSON_TYPES[type(value)]} of {len(value)} entries"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    text = json.dumps(value, ensure_ascii=True) if isinstance(value, (str, bool, type(None))) else repr(value)
    return f"{_JSON_TYPES.get(type(value), type(value).__name__)} {text[:60]}{'...' if len(text) > 60 else ''}"


# --- ---------------------------------------------------------------------------

def _index(i: int, shape: list[int]) -> str:
    return "".join(f"[{k}]" for k in np.unravel_index(i, shape)) if shape else ""


def numeric_array(value, where: str, depths: tuple[int, ...]) -> np.ndarray:
    """A rectangular nested list of JSON numbers, ``depths`` levels deep, as a float array; checked in bulk.

    Booleans, null, strings and objects are not numbers; every entry must be finite with |x| <= MAX_ABS_VALUE
    (so squares and sums of squares cannot overflow). Work is a few C-level passes per level, so million-entry
    arrays cost about as much as parsing them.

    >>> numeric_array([[1, 2.5], [0, -1]], "rewards", (2, 3)).tolist()
    [[1.0, 2.5], [0.0, -1.0]]
    >>> numeric_array([[1, True]], "rewards", (2, 3))
    Traceback (most recent call last):
    ...
    verify.errors.InvalidMDPError: rewards[0][1] is a boolean true, not a number
    >>> numeric_array([[1, 2], [3]], "initial", (2,))
    Traceback (most recent call last):
    ...
    verify.errors.InvalidMDPError: initial is ragged: initial[1] has 1 entries, initial[0] has 2

    Raises:
      InvalidMDPError: naming the first offending entry.
    """
    level, shape = [value], []
    while True:
        kinds = set(map(type, level))
        if kinds == {list} and len(shape) < max(depths):
            lengths = list(map(len, level))
            if min(lengths) != max(lengths) or lengths[0] == 0:
                bad = next(i for i, n in enumerate(lengths) if n != lengths[0]) if lengths[0] else 0
                if lengths[bad] == 0 or lengths[0] == 0:
                    raise InvalidMDPError(f"{where}{_index(bad if lengths[0] else 0, shape)} is an empty list")
                raise InvalidMDPError(f"{where} is ragged: {where}{_index(bad, shape)} has {lengths[bad]} entries, "
                                      f"{where}{_index(0, shape)} has {lengths[0]}")
            shape.append(lengths[0])
            level = list(chain.from_iterable(level))
            continue
        d = len(shape)
        if kinds <= {int, float} and d in depths:
            break
        expect_list = d < min(depths) or d < max(depths) and type(level[0]) is list
        levels = f"({' or '.join(map(str, depths))} levels of lists)"
        for i, x in enumerate(level):
            if (type(x) is list) == expect_list and (expect_list or type(x) in (int, float)):
                continue
            if type(x) is list:
                raise InvalidMDPError(f"{where}{_index(i, shape)} is a list where a number is expected {levels}")
            if type(x) in (int, float):
                raise InvalidMDPError(f"{where}{_index(i, shape)} is a number where a list is expected {levels}")
            raise InvalidMDPError(f"{where}{_index(i, shape)} is {describe_value(x)}, not "
                                  f"{'a list' if expect_list else 'a number'}")
        raise InvalidMDPError(f"{where} must be {levels[1:-1]} of numbers")  # pragma: no cover - found above
    arr = np.array(level, dtype=float).reshape(shape)
    bad = np.flatnonzero(~(np.abs(arr) <= MAX_ABS_VALUE))
    if bad.size:
        x = arr.reshape(-1)[bad[0]]
        why = "must be a finite number" if not math.isfinite(x) else f"|x| above {MAX_ABS_VALUE:g}: squares overflow"
        raise InvalidMDPError(f"{where}{_index(int(bad[0]), shape)} is {x} ({why})")
    return arr
