"""Reading and validating the next chunk in a child process while this one writes the current
one: the `ReadPlan`, the chunks it yields, and the `ReaderProcess` that runs it.

Reads the events file (in the child); writes nothing to the store: validated chunks travel
to the importing process as Arrow IPC through a pipe that holds one chunk at most.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow as pa

from tailor.events.ingest.chunks import validate_chunk
from tailor.events.ingest.event_types import EventTypeNames
from tailor.events.ingest.files import InputFile
from tailor.events.ingest.jsonl import JsonPlan
from tailor.events.ingest.mapping import ColumnPlan
from tailor.events.ingest.readers import ONE_LINE_COLUMNS, iter_chunks
from tailor.events.ingest.report import ChunkNotes, IngestReport
from tailor.events.schema import TimestampRules


@dataclass
class ReadPlan:
    """What reading and validating an events file needs (picklable: a reader process gets it).

    `column_plan` maps the file's columns onto the contract's and `event_types` reads other
    names of event types; for JSON Lines the plan's paths are read directly (`JsonPlan`).
    """

    source: InputFile
    columns: list[str]
    chunk_rows: int
    now: pd.Timestamp
    known_products: set[str] | None
    max_future_seconds: int
    pii_in_events: bool
    timestamps: TimestampRules = field(default_factory=TimestampRules)
    column_plan: ColumnPlan = field(default_factory=ColumnPlan)
    event_types: EventTypeNames = field(default_factory=EventTypeNames)

    @property
    def path(self) -> "Path | str":
        return self.source.path


# valid rows, dead letters, warnings, what the check noticed (timestamps, event types)
ValidatedChunk = tuple[pd.DataFrame, pd.DataFrame, list[str], ChunkNotes]


# With a reader process, the first chunk goes out in growing pieces: the writer starts on
# an eighth of a chunk instead of waiting for a whole one to be read and validated.
CLOSE_SECONDS = 5.0  # how long a terminated reader gets before it is killed
FIRST_CHUNK_SHARES = (0.125, 0.125, 0.25, 0.5)


def validated_chunks(plan: ReadPlan, *, quick_start: bool = False) -> Iterator[ValidatedChunk]:
    """Each chunk of the file, read and validated: its valid rows, its dead-letter rows and
    the warnings it raised (e.g. PII columns dropped).

    Args:
        plan: the file and the validation settings.
        quick_start: yield the first chunk in `FIRST_CHUNK_SHARES` pieces.

    Raises:
        InputError: the file cannot be read past some point (chunks before it were yielded).
    """
    notes = IngestReport(pii_in_events=plan.pii_in_events)  # collects warnings only
    is_json = plan.source.kind == "jsonl"
    chunks = iter_chunks(plan.source, plan.columns, plan.chunk_rows, arrow_text=True,
                         one_line=plan.column_plan.one_line_sources(ONE_LINE_COLUMNS),
                         json_plan=JsonPlan.from_columns(plan.column_plan, plan.event_types)
                         if is_json else None)
    for number, whole in enumerate(chunks):
        for chunk in (whole.split(FIRST_CHUNK_SHARES) if quick_start and number == 0
                      else [whole]):
            seen, found = len(notes.warnings), ChunkNotes()
            valid, rejected = validate_chunk(chunk, path=plan.source.shown, now=plan.now,
                                             known_products=plan.known_products,
                                             max_future_seconds=plan.max_future_seconds,
                                             report=notes, timestamps=plan.timestamps,
                                             column_plan=None if is_json else plan.column_plan,
                                             event_types=plan.event_types, notes=found)
            yield valid, rejected, notes.warnings[seen:], found


class ReaderProcess:
    """`validated_chunks` run in a child process, so reading and validating the next chunk
    overlaps with writing this one on another core.

    Threads would not overlap: the validation and the SQLite driver's per-row binding both
    need the GIL, and each process has its own. Chunks travel as Arrow IPC through a pipe
    that holds one chunk at most, so memory stays bounded; the child stops when the pipe
    breaks (this process gone) and is terminated by `close`.
    """

    def __init__(self, plan: ReadPlan) -> None:
        # fork: no second start-up (imports) before the first chunk; elsewhere spawn is safe.
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_send_validated_chunks,
                                        args=(plan, send, self._receive),
                                        name="tailor-ingest-reader", daemon=True)
        self._process.start()
        send.close()  # the child holds the only sending end: its exit means end of file

    def __iter__(self) -> Iterator[ValidatedChunk]:
        """The chunks in file order; raises what the reader raised, after the chunks before it.

        Raises:
            Exception: the reader's error (e.g. InputError for a file unreadable past a point),
                or RuntimeError when the reader process died.
        """
        while True:
            try:
                message = self._receive.recv()
            except EOFError:
                self._process.join(timeout=10)
                raise RuntimeError(f"the ingest reader process stopped unexpectedly (exit code "
                                   f"{self._process.exitcode}); chunks before it were "
                                   "imported, re-importing stores them once") from None
            if message[0] == "done":
                return
            if message[0] == "error":
                raise message[1]
            yield (frame_from_arrow(message[1]), frame_from_arrow(message[2]), message[3],
                   message[4])

    def close(self) -> None:
        """Stop the reader (if it still runs) and release the pipe. A reader blocked on a full
        pipe (the import stopped early) is terminated, and killed if it outlives that."""
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=CLOSE_SECONDS)
            if self._process.is_alive():
                self._process.kill()
        self._process.join()
        self._receive.close()


def _send_validated_chunks(plan: ReadPlan, send: Any, receive: Any) -> None:
    """The reader process: each validated chunk through the pipe, then "done" or the error.

    `receive` is the importing process's end, which a forked child holds a copy of: closed
    at once, so that the importing process's death breaks the pipe instead of blocking it.
    """
    receive.close()
    # A forked child inherits the parent's handlers (a scheduler's SIGTERM handler, say):
    # the reader must stop when `close` terminates it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        for valid, rejected, warnings, found in validated_chunks(plan, quick_start=True):
            send.send(("chunk", frame_to_arrow(valid), frame_to_arrow(rejected), warnings,
                       found))
        send.send(("done",))
    except BrokenPipeError:  # the importing process is gone: nothing left to do
        return
    except BaseException as error:  # handed to the importing process, which raises it
        send.send(("error", _picklable(error)))
    finally:
        send.close()


def _picklable(error: BaseException) -> BaseException:
    """The error itself when it can cross the pipe, else a RuntimeError saying what it was."""
    try:
        pickle.dumps(error)
        return error
    except Exception:  # any pickling failure: keep the type name and message
        return RuntimeError(f"{type(error).__name__}: {error}")


def frame_to_arrow(frame: pd.DataFrame) -> bytes:
    """A frame as Arrow IPC stream bytes (columns and dtypes kept, index dropped)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def frame_from_arrow(payload: bytes) -> pd.DataFrame:
    """The frame `frame_to_arrow` wrote."""
    # split_blocks: no consolidation copy; the table is dropped right after.
    return pa.ipc.open_stream(payload).read_all().to_pandas(split_blocks=True,
                                                            self_destruct=True)
