"""``labelwise report FOLDER``: report.md (+ report_files/*.png) and a self-contained
report.html for a sweep folder (results.csv, or the trials finished so far) or a run folder."""

from __future__ import annotations

import sys
from pathlib import Path

from labelwise.contracts import RESULTS, TRIAL_RESULT, TRIALS


def write_report(folder: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``folder``; return their paths."""
    from labelwise import runio

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    finished = sorted(folder.glob(f"{TRIALS}/*/{TRIAL_RESULT}"))
    if (folder / RESULTS).exists() or finished:
        import json

        import pandas as pd

        from labelwise.report import sweep_report
        from labelwise.report.table import check_results

        if (folder / RESULTS).exists():
            df = check_results(pd.read_csv(folder / RESULTS), str(folder / RESULTS))
        else:  # a sweep still running or interrupted: the trials finished so far
            df = check_results(pd.DataFrame([json.loads(p.read_text()) for p in finished]), str(folder / "trials"))
        doc = sweep_report.build(df, folder)
    else:
        from labelwise.report import run_report

        doc = run_report.build(folder)
    text, files = doc.markdown("report_files")
    for rel, png in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with runio.atomic_path(path) as tmp:
            tmp.write_bytes(png)
    md = runio.write_text(folder / "report.md", text)
    page = runio.write_text(folder / "report.html", doc.html())
    return md, page


def main(folder) -> int:
    """Exit 2 when FOLDER is not a run or sweep folder (a usage error), 1 when its files
    cannot be reported (a stage error), as every command does."""
    try:
        md, page = write_report(folder)
    except FileNotFoundError as e:
        print(f"labelwise report: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"labelwise report: error: {e}", file=sys.stderr)
        return 1
    print(f"report: {md}\n        {page}")
    return 0
