"""Job input I/O: resolve a path or URI on any filesystem pyarrow supports, plan it with Ray tasks on the cluster,
and read one unit into an Arrow table with its row ids (what each read task of the stream does)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pa_fs
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from batch.plan import (
    FINE_ROWS,
    FileCut,
    InputFormat,
    InputPlan,
    Unit,
    auto_block_rows,
    cut_lines,
    cut_row_groups,
    format_for,
    join_units,
    number_units,
)
from batch.spec import JobSpecError

ROW_ID = "row_id"
"""The column gridshift adds to every input row: its id, kept by the pipeline (the contract)."""

READ_CHUNK_BYTES = 8 * 1024 * 1024
_COMPRESSED = (".gz", ".bz2", ".zst", ".xz", ".lz4", ".zip", ".snappy")


class InputError(JobSpecError):
    """The input cannot be read as the job says: missing, unreadable, of an unknown format, or malformed."""


def filesystem_for(uri: str) -> tuple[pa_fs.FileSystem, str]:
    """The pyarrow filesystem and path of a local path or a URI (s3://, gs://, hdfs://, file://, ...)."""
    if "://" not in uri:
        return pa_fs.LocalFileSystem(), os.path.abspath(uri)
    try:
        fs, path = pa_fs.FileSystem.from_uri(uri)
        return fs, str(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
        raise InputError(f"input {uri}: no filesystem for this URI: {error}") from None


@dataclass(frozen=True)
class ResolvedInput:
    """The files of a job's input, sorted, with their sizes and the one format they share."""

    uri: str
    files: tuple[str, ...]
    sizes: tuple[int, ...]
    format: InputFormat


def resolve_input(uri: str, declared: InputFormat | None = None) -> ResolvedInput:
    """List the input's files (a file, or every visible file under a folder), and settle their format: the declared
    one, else the one their suffixes agree on. Every refusal names the path and the reason."""
    fs, path = filesystem_for(uri)
    try:
        info = fs.get_file_info(path)
    except OSError as error:
        raise InputError(f"input {uri}: cannot read: {error}") from None
    if info.type == pa_fs.FileType.NotFound:
        raise InputError(f"input {uri}: no such file or folder")
    if info.type == pa_fs.FileType.Directory:
        selector = pa_fs.FileSelector(path, recursive=True)
        infos = [
            found
            for found in fs.get_file_info(selector)
            if found.type == pa_fs.FileType.File and not any(p.startswith((".", "_")) for p in found.path.split("/"))
        ]
        infos.sort(key=lambda found: found.path)
        if not infos:
            raise InputError(f"input {uri}: the folder holds no files")
    else:
        infos = [info]
    files = tuple(found.path for found in infos)
    for file in files:
        if file.lower().endswith(_COMPRESSED):
            raise InputError(
                f"input {file}: compressed files cannot be split into units; decompress it or convert it to Parquet"
            )
    fmt = declared or _common_format(uri, files)
    scheme = uri.split("://", 1)[0] + "://" if "://" in uri else ""
    full = tuple(scheme + file if scheme and not file.startswith(scheme) else file for file in files)
    return ResolvedInput(uri, full, tuple(int(found.size or 0) for found in infos), fmt)


def _common_format(uri: str, files: tuple[str, ...]) -> InputFormat:
    formats: dict[InputFormat, str] = {}
    for file in files:
        fmt = format_for(file)
        if fmt is None:
            raise InputError(
                f"input {file}: unknown format (suffix); name it with --input-format text|jsonl|csv|parquet"
            )
        formats.setdefault(fmt, file)
    if len(formats) > 1:
        raise InputError(f"input {uri}: files of several formats {sorted(formats)}; use one")
    return next(iter(formats))


def _chunks(uri: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    fs, path = filesystem_for(uri)
    with fs.open_input_file(path) as handle:
        handle.seek(start)
        left = None if end is None else end - start
        while left is None or left > 0:
            data = handle.read(READ_CHUNK_BYTES if left is None else min(READ_CHUNK_BYTES, left))
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data


def cut_file(uri: str, fmt: InputFormat, block_rows: int) -> FileCut:
    """One file's cut (runs as a Ray task, next to the data on a cluster): line-based files are read once."""
    try:
        if fmt is InputFormat.PARQUET:
            fs, path = filesystem_for(uri)
            with fs.open_input_file(path) as handle:
                metadata = pq.ParquetFile(handle).metadata
            if ROW_ID in metadata.schema.names:
                raise InputError(f"input {uri}: has a column {ROW_ID!r}, which gridshift assigns; rename it")
            groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
            return cut_row_groups(groups, block_rows)
        return cut_lines(_chunks(uri), fmt, block_rows)
    except (OSError, pa.ArrowException, UnicodeDecodeError) as error:
        raise InputError(f"input {uri}: cannot read as {fmt.value}: {error}") from None


def plan_input(resolved: ResolvedInput, block_rows: int | None, workers: int) -> InputPlan:
    """Plan every file with a Ray task each (the driver sees only the cut points), join the cuts into units of
    `block_rows` (None: chosen from the input's size and the job's workers), then number the units."""
    import ray

    fine = min(block_rows or FINE_ROWS, FINE_ROWS)
    cut = ray.remote(num_cpus=0.25, max_retries=3)(cut_file)
    cuts: list[FileCut] = ray.get([cut.remote(file, resolved.format, fine) for file in resolved.files])
    rows = sum(r for c in cuts for _, _, r in c.ranges)
    # A job that names its unit size gets exactly that; an automatic size also tapers toward the end of the input.
    size = block_rows or auto_block_rows(rows, workers)
    units = join_units(cuts, size, taper_workers=None if block_rows else workers)
    plan = number_units(resolved.format, resolved.files, resolved.sizes, units)
    if not plan.units:
        raise InputError(f"input {resolved.uri}: no rows")
    return plan


def _lines(data: bytes, unit: Unit, file: str) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"input {file}: bytes {unit.start}..{unit.end}: not UTF-8 text: {error.reason}") from None
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_unit(plan: InputPlan, unit: Unit) -> pa.Table:
    """The unit's rows as a table, with `row_id` first; refuses a file that changed since it was planned."""
    file = plan.files[unit.file]
    fs, path = filesystem_for(file)
    size = fs.get_file_info(path).size
    if size != plan.sizes[unit.file]:
        raise InputError(f"input {file}: changed since the job was planned ({plan.sizes[unit.file]} -> {size} bytes)")
    try:
        table = _read(plan, unit, file)
    except (pa.ArrowException, ValueError) as error:
        where = (
            f"row groups {unit.start}..{unit.end}"
            if plan.format is InputFormat.PARQUET
            else f"bytes {unit.start}..{unit.end}"
        )
        raise InputError(f"input {file}: {where}: not valid {plan.format.value}: {error}") from None
    if table.num_rows != unit.rows:
        raise InputError(
            f"input {file}: unit {unit.index} has {table.num_rows} rows where planning counted {unit.rows}"
            + (
                " (CSV values spanning lines are not supported: convert the file to Parquet)"
                if plan.format is InputFormat.CSV
                else ""
            )
        )
    if ROW_ID in table.column_names:
        raise InputError(f"input {file}: has a column {ROW_ID!r}, which gridshift assigns; rename it")
    ids = pa.array(np.arange(unit.first_row, unit.first_row + unit.rows, dtype=np.int64))
    return table.add_column(0, ROW_ID, ids)


def _read(plan: InputPlan, unit: Unit, file: str) -> pa.Table:
    fs, path = filesystem_for(file)
    if plan.format is InputFormat.PARQUET:
        with fs.open_input_file(path) as handle:
            return pq.ParquetFile(handle).read_row_groups(list(range(unit.start, unit.end)))
    data = b"".join(_chunks(file, unit.start, unit.end))
    if plan.format is InputFormat.TEXT:
        return pa.table({"text": pa.array(_lines(data, unit, file), type=pa.string())})
    if plan.format is InputFormat.JSONL:
        return pa_json.read_json(io.BytesIO(data))
    header = plan.headers[unit.file]
    if header is None:
        raise InputError(f"input {file}: a CSV file needs a header line")
    names = pa_csv.read_csv(io.BytesIO(header.encode("utf-8") + b"\n")).column_names
    return pa_csv.read_csv(io.BytesIO(data), read_options=pa_csv.ReadOptions(column_names=names))
