"""README's headline table and verdicts, and docs/claims.md's full table, are generated from the claims CSVs."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from mathtx_helpers import paper
from mathtx_helpers.core import claims

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS_CLAIMS = ROOT / "docs" / "claims.md"
FIGURES = ROOT / "figures"

SECTIONS = {"one": ("G1", "G7"), "two": ("A1",)}


def _rows() -> list[dict]:
    return [
        {"claim": "G1", "statement": "share | with a pipe (holds: >= 99)", "paper": 99.93, "ours": 88.6847,
         "ci_low": 87.2824, "ci_high": 89.9903, "model_acc": 79.3, "seeds": "88.68 / 91", "seed_holds": "no / yes",
         "seed_model_acc": "79.3 / 81", "profile": "cpu", "holds": "no"},
        {"claim": "G7", "statement": "fewest examples (— if none did; holds: some run is faster: none)",
         "paper": math.nan, "ours": math.nan, "ci_low": math.nan, "ci_high": math.nan, "profile": "cpu",
         "holds": "cannot tell"},
        {"claim": "A1", "statement": "2-layer model: accuracy (%) (paper: six 9s; holds = zero errors)",
         "paper": 99.9999, "ours": 100.0, "ci_low": 99.998, "ci_high": 100.0, "profile": "cpu", "holds": "yes"},
    ]


@pytest.fixture
def tree(tmp_path) -> tuple[Path, Path, Path]:
    """A figures folder with two claims CSVs, and a README and docs page holding every marker."""
    figures = tmp_path / "figures"
    figures.mkdir()
    rows = _rows()
    pd.DataFrame(rows[:2], columns=list(claims.CLAIM_COLUMNS)).to_csv(figures / "03_x_claims.csv", index=False)
    pd.DataFrame(rows[2:], columns=list(claims.CLAIM_COLUMNS)).to_csv(figures / "06_y_claims.csv", index=False)
    blocks = [f"{a}\nSTALE verdict\n{b}\n" for a, b in map(claims.verdict_markers, SECTIONS)]
    readme = tmp_path / "README.md"
    readme.write_text("# t\n\n" + "\n".join(blocks) + f"\n{claims.HEADLINE_MARKERS[0]}\nSTALE table\n"
                      f"{claims.HEADLINE_MARKERS[1]}\n\nafter\n")
    docs = tmp_path / "claims.md"
    docs.write_text(f"# all\n\n{claims.FULL_MARKERS[0]}\nSTALE\n{claims.FULL_MARKERS[1]}\n\nend\n")
    return readme, docs, figures


# ------------------------------------------------------------------------------------------ the committed files


def test_committed_readme_and_docs_match_the_claims_csvs():
    assert claims.stale(README, DOCS_CLAIMS, FIGURES, paper.HEADLINE_CLAIMS, paper.RESULT_CLAIMS) == [], \
        "README.md or docs/claims.md is out of date: run `python -m mathtx_helpers results`"


def test_committed_readme_has_every_headline_claim_and_a_verdict_per_result():
    text = README.read_text()
    df = claims.claims(FIGURES)
    for cid in paper.HEADLINE_CLAIMS:
        r = next(df[df["claim"] == cid].itertuples())
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {cid} | "))
        model = claims._model_acc(r)  # seed 0's model, or every seed's: '87.32 / 87.81'
        assert model.split(" / ")[0] == claims._fmt(r.model_acc)
        assert f"| {claims._fmt(r.ours)} | {model} | " in line and line.endswith(f"| {r.holds} |")
    for section, ids in paper.RESULT_CLAIMS.items():
        start, end = claims.verdict_markers(section)
        block = text.split(start, 1)[1].split(end, 1)[0]
        assert all(cid in block for cid in ids)
        assert [line[:2] for line in block.strip().splitlines()] == ["- ", "- "]  # two lines


def test_committed_docs_table_has_every_claim():
    df = claims.claims(FIGURES)
    text = DOCS_CLAIMS.read_text().split(claims.FULL_MARKERS[0], 1)[1].split(claims.FULL_MARKERS[1], 1)[0]
    assert len(df) > 50 and df["claim"].is_unique
    for r in df.itertuples():
        assert f"| {r.claim} | " in text
    assert text.count("\n| ") == len(df) + 1  # header and one row per claim (the separator starts "|-")


def test_paper_names_only_claims_that_exist():
    known = set(claims.claims(FIGURES)["claim"])
    assert 12 <= len(paper.HEADLINE_CLAIMS) <= 18
    assert set(paper.HEADLINE_CLAIMS) <= known
    for ids in paper.RESULT_CLAIMS.values():
        assert set(ids) <= known


# ------------------------------------------------------------------------------------------ rendering


def test_update_puts_each_value_where_expected(tree):
    readme, docs, figures = tree
    changed = claims.update(readme, docs, figures, ("A1", "G1"), SECTIONS)
    assert changed == [readme, docs]
    full = docs.read_text()
    assert ("| G1 | share \\| with a pipe (holds: >= 99) | 99.93 | 88.68 | [87.28, 89.99] | 79.3 / 81 "
            "| 88.68 / 91 (no / yes) | no | `03_x` |") in full
    assert ("| G7 | fewest examples (— if none did; holds: some run is faster: none) | — | — | — | — | — "
            "| cannot tell | `03_x` |") in full
    assert "| A1 | 2-layer model: accuracy (%) (paper: six 9s; holds = zero errors) | 99.9999 | 100 | " \
           "[99.998, 100] | — | — | yes | `06_y` |" in full
    assert "STALE" not in full and full.startswith("# all\n\n") and full.endswith("\n\nend\n")
    assert "Profile: cpu." in full

    text = readme.read_text()
    head = text.split(claims.HEADLINE_MARKERS[0], 1)[1].split(claims.HEADLINE_MARKERS[1], 1)[0]
    lines = [ln for ln in head.splitlines() if ln.startswith("| ")]
    assert lines == ["| claim | statement | paper | ours | model acc. % | seeds (ours / holds) | holds |",
                     "| A1 | 2-layer model: accuracy (%) | 99.9999 | 100 | — | — | yes |",  # in the order given
                     # rule and paper parentheses dropped; the model's accuracy and each seed beside ours
                     "| G1 | share \\| with a pipe | 99.93 | 88.68 | 79.3 / 81 | 88.68 / 91 (no / yes) | no |"]
    one = text.split(claims.verdict_markers("one")[0], 1)[1].split(claims.verdict_markers("one")[1], 1)[0]
    assert one.strip().splitlines() == [
        "- **holds** (0 of 2): none",
        "- **does not hold** (1 of 2): G1 (ours 88.68 vs paper 99.93); **cannot tell** (1): G7 (ours —)"]
    two = text.split(claims.verdict_markers("two")[0], 1)[1].split(claims.verdict_markers("two")[1], 1)[0]
    assert two.strip().splitlines() == ["- **holds** (1 of 1): A1 (ours 100 vs paper 99.9999)",
                                        "- **does not hold** (0 of 1): none"]
    assert "STALE" not in text and text.endswith("\n\nafter\n")


def test_update_is_idempotent_and_stale_writes_nothing(tree):
    readme, docs, figures = tree
    assert claims.stale(readme, docs, figures, ("G1",), SECTIONS) == [readme, docs]
    assert "STALE table" in readme.read_text()  # stale() only looks
    claims.update(readme, docs, figures, ("G1",), SECTIONS)
    before = readme.read_text(), docs.read_text()
    assert claims.update(readme, docs, figures, ("G1",), SECTIONS) == []
    assert (readme.read_text(), docs.read_text()) == before
    assert claims.stale(readme, docs, figures, ("G1",), SECTIONS) == []
    # a changed CSV makes both files stale again
    df = pd.read_csv(figures / "03_x_claims.csv")
    df.loc[0, "ours"] = 99.5
    df.to_csv(figures / "03_x_claims.csv", index=False)
    assert claims.stale(readme, docs, figures, ("G1",), SECTIONS) == [readme, docs]
    assert claims.update(readme, docs, figures, ("G1",), SECTIONS) == [readme, docs]
    want = "| G1 | share \\| with a pipe | 99.93 | 99.5 | 79.3 / 81 | 88.68 / 91 (no / yes) | no |"
    assert want in readme.read_text()


@pytest.mark.parametrize("which", ["headline", "verdict", "full"])
def test_missing_markers_raise_naming_them(tree, which):
    readme, docs, figures = tree
    if which == "headline":
        path, marker = readme, claims.HEADLINE_MARKERS[1]
    elif which == "verdict":
        path, marker = readme, claims.verdict_markers("two")[0]
    else:
        path, marker = docs, claims.FULL_MARKERS[0]
    path.write_text(path.read_text().replace(marker, ""))
    before = readme.read_text(), docs.read_text()
    for act in (claims.update, claims.stale):
        with pytest.raises(ValueError, match="needs the markers") as e:
            act(readme, docs, figures, ("G1",), SECTIONS)
        assert marker in str(e.value) and path.name in str(e.value)
    assert (readme.read_text(), docs.read_text()) == before  # nothing written


def test_unknown_claim_ids_and_columns_raise(tree):
    readme, docs, figures = tree
    with pytest.raises(ValueError, match="'G99'"):
        claims.update(readme, docs, figures, ("G1", "G99"), SECTIONS)
    with pytest.raises(ValueError, match="'B1'"):
        claims.update(readme, docs, figures, ("G1",), {"one": ("B1",), "two": ("A1",)})
    with pytest.raises(ValueError, match="unknown table column"):
        claims.render_table(claims.claims(figures), ("claim", "nonsense"))


def test_render_table_columns_and_an_empty_folder(tmp_path, tree):
    _, _, figures = tree
    df = claims.claims(figures)
    table = claims.render_table(df, ("claim", "ci", "notebook"))
    assert table.splitlines() == ["| claim | 95 % CI | notebook |", "|---|---|---|",
                                  "| G1 | [87.28, 89.99] | `03_x` |", "| G7 | — | `03_x` |",
                                  "| A1 | [99.998, 100] | `06_y` |"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claims.claims(empty).empty
    assert claims.render_full(claims.claims(empty)) == claims.NO_CLAIMS


def test_short_statement():
    s = ("eigenvalues: fewest examples a run needed (— if none did; the semicircle run needed 250,048; holds: some "
         "run is faster: none)")
    assert claims.short_statement(s) == "eigenvalues: fewest examples a run needed"
    assert claims.short_statement("x: % not orthogonal (proxy, >= 0.05); holds: >= 50 while ...") == \
        "x: % not orthogonal (proxy, >= 0.05)"
    long = "m: " + " ".join(["word"] * 40)
    cut = claims.short_statement(long, width=50)
    assert len(cut) <= 50 and cut.endswith("…")
