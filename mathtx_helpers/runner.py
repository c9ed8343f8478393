"""Execute the notebooks in order with papermill (`make figures`).

For each notebook NN_slug.ipynb:
  1. execute it into data/executed/<profile>/ with the profile in $MATHTX_PROFILE and its figures written
     to a staging folder (data/staging/<profile>/NN_slug/);
  2. only if every cell succeeded: replace the profile's figures of that notebook (names starting "NN_")
     by the staged ones, and, for the default profile, replace notebooks/NN_slug.ipynb by the executed copy
     (papermill's timing metadata stripped, so reruns give clean diffs).
A failing notebook stops the run with one line naming the notebook and the cell; the committed notebook and
figures stay as they were, and the failed copy is kept for reading.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from .core import store
from .profiles import DEFAULT_PROFILE, PROFILE_ENV, get_profile


def notebook_paths(only: list[str] | None = None) -> list[Path]:
    """The ordered notebooks, optionally only those whose name starts with one of `only` ('01', '02_tr')."""
    paths = sorted(store.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        unknown = [o for o in only if not any(p.name.startswith(o) for p in paths)]
        if unknown:
            names = ", ".join(p.stem for p in paths)
            raise ValueError(f"no notebook matches {unknown[0]!r}; notebooks: {names}")
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
    return paths


def clean_metadata(path: Path) -> None:
    """Drop papermill's per-run metadata (timings, machine paths) from an executed notebook."""
    nb = json.loads(path.read_text())
    nb.get("metadata", {}).pop("papermill", None)
    for cell in nb.get("cells", []):
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    store.write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _publish_figures(staged: Path, target: Path, prefix: str) -> int:
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob(f"{prefix}_*"):
        if old.is_file():
            old.unlink()
    files = sorted(p for p in staged.iterdir() if p.is_file())
    for f in files:
        os.replace(f, target / f.name)
    return len(files)


def run(profile: str | None = None, only: list[str] | None = None) -> int:
    """Execute the notebooks; return a process exit code (0 on success)."""
    import papermill as pm

    prof = get_profile(profile)
    paths = notebook_paths(only)
    os.environ[PROFILE_ENV] = prof.name  # the kernels inherit it: the parameters cell reads it
    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars inside committed outputs
    from . import shipping

    for line in shipping.restore(prof):  # the shipped models: notebook 02 then trains only what is missing
        print(line, flush=True)
    timings = []
    for nb in paths:
        prefix = nb.name[:2]
        stage = store.DATA / "staging" / prof.name / nb.stem
        shutil.rmtree(stage, ignore_errors=True)
        (stage / "figures").mkdir(parents=True)
        executed = store.DATA / "executed" / prof.name / nb.name
        executed.parent.mkdir(parents=True, exist_ok=True)
        os.environ[store.FIGURES_ENV] = str(stage / "figures")
        print(f"[{prof.name}] {store.relative(nb)}", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(executed), cwd=str(store.NOTEBOOKS), kernel_name="python3",
                                progress_bar=sys.stderr.isatty(), log_output=False)
        except pm.PapermillExecutionError as e:
            print(f"FAILED: {store.relative(nb)} at cell {e.cell_index} (execution count {e.exec_count}): "
                  f"{e.ename}: {e.evalue}\n  executed copy: {store.relative(executed)}; "
                  f"committed notebook and figures left unchanged", file=sys.stderr)
            return 1
        finally:
            os.environ.pop(store.FIGURES_ENV, None)
        clean_metadata(executed)
        n_fig = _publish_figures(stage / "figures", store.ROOT / prof.figures, prefix)
        if prof.name == DEFAULT_PROFILE:
            store.write_bytes(nb, executed.read_bytes())
        shutil.rmtree(stage, ignore_errors=True)
        dt = time.perf_counter() - t0
        timings.append((nb.stem, dt))
        print(f"  done in {dt:.0f} s, {n_fig} figure files -> {prof.figures}/", flush=True)
    total = sum(t for _, t in timings)
    print(f"[{prof.name}] {len(timings)} notebooks in {total:.0f} s", flush=True)
    if prof.name == DEFAULT_PROFILE and README.exists():
        try:
            changed = _claim_tables(update=True)
        except (ValueError, OSError) as e:  # a claim id paper.py names that no notebook wrote, a missing docs file
            print(f"FAILED: the claims tables were not regenerated: {e}", file=sys.stderr)
            return 1
        for path in changed:
            print(f"{store.relative(path)}: claims tables regenerated from figures/*_claims.csv", flush=True)
    return 0


README = store.ROOT / "README.md"
DOCS_CLAIMS = store.ROOT / "docs" / "claims.md"


def _claim_tables(update: bool) -> list[Path]:
    """README's headline table and verdicts, and docs/claims.md's full table, from figures/*_claims.csv:
    rewritten (update) or only checked (the files that are out of date)."""
    from . import paper
    from .core import claims

    act = claims.update if update else claims.stale
    return act(README, DOCS_CLAIMS, store.FIGURES, paper.HEADLINE_CLAIMS, paper.RESULT_CLAIMS)


def results(check: bool = False) -> int:
    """`python -m mathtx_helpers results [--check]`."""
    if check:
        stale = _claim_tables(update=False)
        for path in stale:
            print(f"{store.relative(path)} is out of date with figures/*_claims.csv: run "
                  "`python -m mathtx_helpers results`")
        if not stale:
            print("README.md and docs/claims.md match figures/*_claims.csv")
        return 1 if stale else 0
    changed = _claim_tables(update=True)
    print("\n".join(f"{store.relative(p)} updated" for p in changed)
          or "README.md and docs/claims.md already up to date")
    return 0
