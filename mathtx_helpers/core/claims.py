"""Claims: a claim is one object (its statement, the paper's value, the rule that decides it). It renders its
own "holds" text into the statement, judges an unmeasurable value (NaN) as "cannot tell", and becomes one row
of a notebook's claims CSV (figures/<NN_slug>_claims.csv). The README's tables are generated from those CSVs.

    G1 = Claim("G1", "{model}: % of failures at 5 % with eigenvalues within 2 % (holds: {rule})", at_least(99),
               paper=99.93)
    G1.row(88.7, "cpu", ci=(87.3, 90.0), model="eigenvectors")
    -> {"claim": "G1", "statement": "eigenvectors: % of failures ... (holds: >= 99)", "holds": "no", ...}

The claims themselves are defined with the analyses they judge (matrix/claims.py, arith/claims.py), where
they can be reviewed and tested; the notebooks only measure and call row().
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import store

# model_acc: accuracy (%) on its own test set of the model the row was measured on (matrices: at 5 %; addition:
# exact answers on the uniform set; NaN: several models, or none); seeds / seed_holds / seed_model_acc: ours, the
# verdict and the model's accuracy on each seed's model, " / "-joined in seed order (empty: one seed)
CLAIM_COLUMNS = ("claim", "statement", "paper", "ours", "ci_low", "ci_high", "model_acc", "seeds", "seed_holds",
                 "seed_model_acc", "profile", "holds")
CANNOT_TELL = "cannot tell"


def is_nan(x) -> bool:
    """None, NaN of any float type, pd.NA: a value that was not measured."""
    return x is None or (not isinstance(x, str) and bool(pd.isna(x)))


@dataclass(frozen=True)
class Rule:
    """When a claim holds: `text` as the statement shows it, `test(ours, **context)` -> True, False, or None
    for "cannot tell" (context: the other measured values the rule needs)."""

    text: str
    test: Callable[..., bool | None]

    def __call__(self, ours, **context) -> bool | None:
        out = self.test(ours, **context)
        return None if out is None else bool(out)


def at_least(x: float) -> Rule:
    return Rule(f">= {x:g}", lambda v, **_: v >= x)


def at_most(x: float) -> Rule:
    return Rule(f"<= {x:g}", lambda v, **_: v <= x)


def below(x: float) -> Rule:
    return Rule(f"< {x:g}", lambda v, **_: v < x)


def equal_to(x: float) -> Rule:
    return Rule(f"{x:g}", lambda v, **_: v == x)


def between(lo: float, hi: float) -> Rule:
    """lo <= ours < hi."""
    return Rule(f"{lo:g} to {hi:g}", lambda v, **_: lo <= v < hi)


@dataclass(frozen=True)
class Claim:
    """One claim. `statement` is a template: {rule} is the rule's text, other {names} come from row()'s
    context (measured values the reader needs beside the verdict, and which model). `nan` is the verdict
    when ours is NaN: "cannot tell", or "rule" where the rule itself judges a missing value (G7: no run
    reached the target is a "no")."""

    id: str
    statement: str
    rule: Rule | None = None
    paper: float | None = None
    nan: str = CANNOT_TELL

    def text(self, **context) -> str:
        return self.statement.format(rule=self.rule.text if self.rule else "", **context)

    def verdict(self, ours, **context) -> str:
        """'yes', 'no' or 'cannot tell', by the rule (NaN: see `nan`)."""
        if is_nan(ours) and self.nan != "rule":
            return self.nan
        if self.rule is None:
            raise ValueError(f"claim {self.id} has no rule")
        holds = self.rule(ours, **context)
        return CANNOT_TELL if holds is None else ("yes" if holds else "no")

    def row(self, ours, profile: str, ci: tuple[float, float] = (math.nan, math.nan), judged: bool = True,
            id: str | None = None, paper: float | None | str = "default", model_acc: float = math.nan,
            **context) -> dict:
        """The claims-CSV row. judged=False: the measurement exists but the claim cannot be judged on it
        ("cannot tell", e.g. a model that never learned its own task). id/paper: a variant of the claim (the
        weaker model's row, which has no paper value). model_acc: the accuracy (%) of the model it was measured on
        (see CLAIM_COLUMNS), so that a "no" on a weak model can be told from one on a strong model. context: the
        template's names and the rule's inputs."""
        verdict = self.verdict(ours, **context) if judged else CANNOT_TELL
        anchor = self.paper if paper == "default" else paper
        return {"claim": id or self.id, "statement": self.text(**context),
                "paper": math.nan if anchor is None else anchor, "ours": math.nan if ours is None else ours,
                "ci_low": ci[0], "ci_high": ci[1], "model_acc": math.nan if model_acc is None else model_acc,
                "seeds": "", "seed_holds": "", "seed_model_acc": "", "profile": profile, "holds": verdict}


def with_seeds(rows_by_seed: dict[int, list[dict]]) -> list[dict]:
    """The first seed's rows, each with `seeds`, `seed_holds` and `seed_model_acc` filled from the rows of the same
    claim id on every seed's model (in the dict's order; "—" where a seed has no such row). One seed: the rows
    unchanged."""
    seeds = list(rows_by_seed)
    if not seeds:
        raise ValueError("with_seeds: no seed's rows given")
    by_id = {k: {r["claim"]: r for r in rows} for k, rows in rows_by_seed.items()}
    for k, rows in rows_by_seed.items():
        if len(by_id[k]) != len(rows):
            raise ValueError(f"with_seeds: seed {k} has two rows with the same claim id")
    if len(seeds) == 1:
        return list(rows_by_seed[seeds[0]])
    out = []
    for r in rows_by_seed[seeds[0]]:
        each = [by_id[k].get(r["claim"]) for k in seeds]
        out.append({**r, "seeds": " / ".join("—" if e is None else _fmt(e["ours"]) for e in each),
                    "seed_holds": " / ".join("—" if e is None else e["holds"] for e in each),
                    "seed_model_acc": " / ".join("—" if e is None else _fmt(e["model_acc"]) for e in each)})
    return out


def changes_with_seed(seed_holds: str) -> bool:
    """Whether the verdicts of a row's seeds differ ("yes / no"; also "yes / cannot tell": what the claim reads
    then depends on the seed's model); one seed or a missing seed ("—"): False."""
    verdicts = [v.strip() for v in str(seed_holds).split("/") if v.strip() and v.strip() != "—"]
    return len(set(verdicts)) > 1


def seed_spread(rows: list[dict]) -> pd.DataFrame:
    """The rows of with_seeds() as a table for the notebooks: ours with its bootstrap interval, each seed's value
    and verdict, and whether the verdict changes with the seed."""
    df = pd.DataFrame(rows)
    return pd.DataFrame({"claim": df["claim"], "ours (seed 0)": df["ours"], "95 % CI": [
        "—" if is_nan(lo) else f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(df.ci_low, df.ci_high, strict=True)],
        "model acc %": df["model_acc"], "each seed": df["seeds"], "holds on each seed": df["seed_holds"],
        "model acc % on each seed": df["seed_model_acc"],
        "changes with the seed": [changes_with_seed(v) for v in df["seed_holds"]]})


def seed_spread_summary(spread: pd.DataFrame) -> str:
    """One line for the notebooks under seed_spread()'s table: how many claims change their verdict with the seed,
    which ones, or that only one seed's model was measured (then there is nothing to compare: not "0 change")."""
    if not any("/" in str(v) for v in spread["holds on each seed"]):
        return "only one seed's model was measured: no seed-to-seed comparison yet"
    changed = spread.claim[spread["changes with the seed"]].tolist()
    return (f"{len(changed)} of {len(spread)} claims change their verdict with the seed"
            + (f": {', '.join(changed)}" if changed else ""))


def write_claims(rows: list[dict], notebook: str, figures: str) -> pd.DataFrame:
    """Write the claim rows to <figures>/<notebook>_claims.csv (e.g. 03_failure_analysis) and return them;
    `figures` is the profile's figures folder."""
    if "/" not in figures and figures != "figures":
        raise ValueError(f"write_claims: {figures!r} is not a figures folder; pass the profile's Profile.figures "
                         "(e.g. 'figures' or 'data/figures/smoke')")
    df = pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))
    if df.empty or df["claim"].isna().any():
        raise ValueError("write_claims: every row needs a claim id")
    store.write_text(store.figures_dir(figures) / f"{notebook}_claims.csv",
                     df.to_csv(index=False, float_format="%.6g"))
    return df


# ----------------------------------------------------------------------------------- tables (README and docs)

# Generated blocks, each between a start and an end marker in a markdown file (the start markers say where the
# text comes from, so that nobody edits it by hand):
#     the full claims table       (docs/claims.md)  every claim: statement, paper, ours, 95 % CI, holds, notebook
#     the headline table          (README.md)       the chosen claims: claim, statement (short), paper, ours, holds
#     one verdict per section     (README.md)       two lines from the claims of one result: holds / does not hold
# Which claims are headline and which belong to which section is the caller's (paper.HEADLINE_CLAIMS,
# paper.RESULT_CLAIMS): this module knows no track.

_SOURCE = "generated from figures/*_claims.csv by `python -m mathtx_helpers results`; do not edit"
FULL_MARKERS = (f"<!-- claims:start ({_SOURCE}) -->", "<!-- claims:end -->")
HEADLINE_MARKERS = (f"<!-- headline:start ({_SOURCE}) -->", "<!-- headline:end -->")
NO_CLAIMS = "No claims CSV in figures/ yet: run `make figures`."
PAPER_NOTE = ("Paper values are the anchors of `../shared/PAPER.md` §G for the matrix claims (bounds derived from the "
              "stored notebook where marked there) and of `../shared/ARITHMETIC.md` for the arithmetic ones (A, B, C); "
              "— where the paper gives none.")
COLUMNS_NOTE = ("model acc. %: the accuracy, on its own test set, of the model the claim was read on (matrices: "
                "at 5 % tolerance; arithmetic: exact answers on the uniform set; — where several models or none), "
                "one per seed where the claim was read on each seed's model; "
                "seeds: ours on each seed's model, seed 0 first, with each verdict (— where the claim was read on "
                "one seed).")
SHORT_WIDTH = 110  # the headline table's statements are cut to this many characters


def verdict_markers(section: str) -> tuple[str, str]:
    """The markers of a section's verdict block, e.g. <!-- verdict:result1:start -->."""
    return f"<!-- verdict:{section}:start -->", f"<!-- verdict:{section}:end -->"


def _fmt(x) -> str:
    if isinstance(x, str):
        return x
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if abs(x) >= 1e4:
        return f"{x:,.0f}"
    if 99 < x < 100:  # a share just under 100 %: enough digits to tell 99.998 from 100
        return f"{x:.{3 + math.ceil(-math.log10(100 - x))}g}"
    return f"{x:,.4g}"


def claims(folder: Path | None = None) -> pd.DataFrame:
    """Every claims CSV of a figures folder, in notebook order, with the notebook it came from."""
    folder = folder or store.FIGURES
    parts = [pd.read_csv(p, keep_default_na=False, na_values=[""]).assign(notebook=p.name.removesuffix("_claims.csv"))
             for p in sorted(Path(folder).glob("*_claims.csv"))]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*CLAIM_COLUMNS, "notebook"])


def short_statement(text: str, width: int = SHORT_WIDTH) -> str:
    """A statement without its rule: drop the parentheses that state the rule or the paper's value and a
    '; holds: ...' tail; if still longer than `width`, drop the other long parentheses, then cut at a word."""
    import re

    paren = r"\s*\((?:[^()]|\([^()]*\))*\)"  # one parenthesis, possibly holding one level of nested ones
    s = re.sub(paren, lambda m: "" if re.search(r"\b(holds|paper|papers')\b", m.group()) else m.group(), text)
    s = re.sub(r";\s*holds\b.*$", "", s).strip()
    if len(s) > width:
        s = re.sub(paren, lambda m: "" if len(m.group().strip()) > 12 else m.group(), s).strip()
    if len(s) > width:
        s = s[:width - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"
    return s


def _seeds(r) -> str:
    """'88.7 / 91 (no / yes)'; '—' for a row measured on one seed."""
    if "seeds" not in r._fields or is_nan(r.seeds) or not str(r.seeds):
        return "—"
    return f"{r.seeds} ({r.seed_holds})"


def _model_acc(r) -> str:
    """'87.32', or '87.32 / 87.81' for a row measured on each seed's model; '—' for a CSV without the column."""
    if "seed_model_acc" in r._fields and not is_nan(r.seed_model_acc) and str(r.seed_model_acc):
        return str(r.seed_model_acc)
    return _fmt(r.model_acc) if "model_acc" in r._fields else "—"


def _ci(r) -> str:
    return "—" if is_nan(r.ci_low) else f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]"


# column name -> (header, cell of one row)
TABLE_COLUMNS: dict[str, tuple[str, Callable]] = {
    "claim": ("claim", lambda r: str(r.claim)),
    "statement": ("statement", lambda r: str(r.statement)),
    "short": ("statement", lambda r: short_statement(str(r.statement))),
    "paper": ("paper", lambda r: _fmt(r.paper)),
    "ours": ("ours", lambda r: _fmt(r.ours)),
    "ci": ("95 % CI", _ci),
    "model": ("model acc. %", _model_acc),
    "seeds": ("seeds (ours / holds)", lambda r: _seeds(r)),
    "holds": ("holds", lambda r: str(r.holds)),
    "profile": ("profile", lambda r: str(r.profile)),
    "notebook": ("notebook", lambda r: f"`{r.notebook}`"),
}
FULL_COLUMNS = ("claim", "statement", "paper", "ours", "ci", "model", "seeds", "holds", "notebook")
HEADLINE_COLUMNS = ("claim", "short", "paper", "ours", "model", "seeds", "holds")


def render_table(df: pd.DataFrame, columns=FULL_COLUMNS) -> str:
    """A markdown table of claim rows (as claims() returns them), one line per row, in the given columns
    (names of TABLE_COLUMNS; '|' in a cell is escaped)."""
    unknown = [c for c in columns if c not in TABLE_COLUMNS]
    if unknown:
        raise ValueError(f"unknown table column(s) {', '.join(map(repr, unknown))}; valid: {', '.join(TABLE_COLUMNS)}")
    cells = [[TABLE_COLUMNS[c][1](r).replace("|", "\\|") for c in columns] for r in df.itertuples()]
    lines = ["| " + " | ".join(TABLE_COLUMNS[c][0] for c in columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def _select(df: pd.DataFrame, ids, what: str) -> pd.DataFrame:
    """The rows of these claim ids, in this order; an id no CSV holds is a ValueError."""
    ids = list(ids)
    missing = [i for i in ids if i not in set(df["claim"])]
    if missing:
        raise ValueError(f"{what}: no claims CSV holds {', '.join(map(repr, missing))}; "
                         f"valid: {', '.join(map(str, df['claim']))}")
    return df.set_index("claim", drop=False).loc[ids].reset_index(drop=True)


def _profiles(df: pd.DataFrame) -> str:
    return ", ".join(sorted(set(map(str, df["profile"]))))


def render_full(df: pd.DataFrame) -> str:
    """The full claims table with its note (the text between FULL_MARKERS)."""
    if df.empty:
        return NO_CLAIMS
    return render_table(df, FULL_COLUMNS) + f"\n\nProfile: {_profiles(df)}. {COLUMNS_NOTE} {PAPER_NOTE}"


def render_headline(df: pd.DataFrame, headline) -> str:
    """The compact table of the headline claims, in the order given (the text between HEADLINE_MARKERS)."""
    if df.empty:
        return NO_CLAIMS
    return (render_table(_select(df, headline, "headline claims"), HEADLINE_COLUMNS)
            + f"\n\nProfile: {_profiles(df)}. — where the paper gives no number or ours could not be measured. "
            + COLUMNS_NOTE)


def _evidence(r) -> str:
    if is_nan(r.ours):
        return f"{r.claim} (ours —)"
    if is_nan(r.paper):
        return f"{r.claim} (ours {_fmt(r.ours)})"
    return f"{r.claim} (ours {_fmt(r.ours)} vs paper {_fmt(r.paper)})"


def render_verdict(df: pd.DataFrame, ids) -> str:
    """Two lines on a section's claims: which hold, and which do not (or cannot be told), with the numbers
    (the text between a section's verdict markers)."""
    if df.empty:
        return NO_CLAIMS
    rows = _select(df, ids, "section claims")
    by = {v: [_evidence(r) for r in rows.itertuples() if r.holds == v] for v in ("yes", "no", CANNOT_TELL)}
    n = len(rows)
    held = ", ".join(by["yes"]) or "none"
    failed = ", ".join(by["no"]) or "none"
    line2 = f"- **does not hold** ({len(by['no'])} of {n}): {failed}"
    if by[CANNOT_TELL]:
        line2 += f"; **cannot tell** ({len(by[CANNOT_TELL])}): {', '.join(by[CANNOT_TELL])}"
    return f"- **holds** ({len(by['yes'])} of {n}): {held}\n{line2}"


def _replace(text: str, name: str, markers: tuple[str, str], body: str) -> str:
    """`text` with the block between the two markers replaced by body (on its own lines)."""
    start, end = markers
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{name} needs the markers {start!r} and {end!r}, once each and in that order")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n\n{body}\n\n{end}{tail}"


def _generated(readme: Path, docs_claims: Path, folder: Path | None, headline, sections) -> dict[Path, tuple[str, str]]:
    """path -> (current text, generated text) for README and the docs' claims page."""
    df = claims(folder)
    readme, docs_claims = Path(readme), Path(docs_claims)
    old_readme, old_docs = readme.read_text(), docs_claims.read_text()
    new_readme = _replace(old_readme, readme.name, HEADLINE_MARKERS, render_headline(df, headline))
    for section, ids in sections.items():
        new_readme = _replace(new_readme, readme.name, verdict_markers(section), render_verdict(df, ids))
    new_docs = _replace(old_docs, docs_claims.name, FULL_MARKERS, render_full(df))
    return {readme: (old_readme, new_readme), docs_claims: (old_docs, new_docs)}


def stale(readme: Path, docs_claims: Path, folder: Path | None, headline, sections) -> list[Path]:
    """The files whose generated blocks differ from what the claims CSVs of `folder` give (nothing is written).
    headline: the claim ids of README's compact table; sections: section key -> the claim ids of its verdict."""
    return [p for p, (old, new) in _generated(readme, docs_claims, folder, headline, sections).items() if old != new]


def update(readme: Path, docs_claims: Path, folder: Path | None, headline, sections) -> list[Path]:
    """Rewrite the generated blocks of README and the docs' claims page from the claims CSVs of `folder`
    (atomically); return the files that changed. Missing markers or unknown claim ids: ValueError, nothing
    written."""
    generated = _generated(readme, docs_claims, folder, headline, sections)
    changed = [p for p, (old, new) in generated.items() if old != new]
    for p in changed:
        store.write_text(p, generated[p][1])
    return changed
