"""The scaffolding a reader relies on: packaging, notebook hygiene, the runner, figures, atomic writes, CLI."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mathtx_helpers import profiles, runner  # noqa: E402
from mathtx_helpers.core import plots, store  # noqa: E402

ROOT = store.ROOT
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


# ------------------------------------------------------------------------------------------ packaging


def test_environment_yml_installs_what_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*python=3\.11\s*$", env, re.M), "environment.yml must pin python 3.11"
    assert ">=3.11" in project["requires-python"]
    installs = re.findall(r"^\s*-\s*-e\s+\.\[([\w,]+)\]\s*$", env, re.M)
    assert installs, "environment.yml must install the package itself with `-e .[extras]`"
    extras = set(installs[0].split(","))
    assert extras <= set(project["optional-dependencies"]), "environment.yml names an extra pyproject lacks"
    # the dev extra is what `make test` installs: it must bring the notebook extra and the test tools
    dev = " ".join(project["optional-dependencies"]["dev"])
    for need in ("mathtx[notebooks]", "pytest", "hypothesis", "nbval", "ruff"):
        assert need in dev
    # no second dependency list: environment.yml holds no package other than python, pip and the project
    listed = re.findall(r"^\s*-\s*([A-Za-z][\w.-]*)", env, re.M)
    assert set(listed) <= {"python", "pip", "conda-forge"}, listed


def test_makefile_installs_cpu_torch_first_and_ci_calls_make_test():
    make = (ROOT / "Makefile").read_text()
    torch_line = next(i for i, line in enumerate(make.splitlines()) if "TORCH_SPEC)" in line and "install" in line)
    package_line = next(i for i, line in enumerate(make.splitlines()) if '-e ".[dev]"' in line)
    assert torch_line < package_line
    assert "import torch" in make.splitlines()[torch_line]  # only when no torch is present
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    readme = (ROOT / "README.md").read_text()
    assert "make figures" in readme and "make test" in readme


def test_make_help_lists_every_target():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for target in ("env", "figures", "test", "lint", "lab", "bench", "clean"):
        assert re.search(rf"make {target}\s+\S", out), f"make help does not describe {target}"


# ------------------------------------------------------------------------------------------ notebooks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_one_typed_documented_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    names = []
    for line in tagged[0].source.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        code, _, comment = line.partition("#")
        assert comment.strip(), f"parameter line without a # help comment: {line!r}"
        node = ast.parse(code).body[0]
        assert isinstance(node, ast.AnnAssign), f"parameter must be typed (name: type = literal): {line!r}"
        ast.literal_eval(node.value)  # a literal, so papermill can document and override it
        names.append(node.target.id)
    assert "profile" in names
    assert nb.cells[0].cell_type == "markdown", "a notebook opens with the claim it tests"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_outputs_are_clean(path):
    nb = json.loads(path.read_text())
    text = json.dumps([c.get("outputs", []) for c in nb["cells"]])
    for machine_path in (str(ROOT), str(ROOT.parent) + "/", str(Path.home()) + "/", "/tmp/"):
        assert machine_path not in text, f"{path.name} output shows a machine path ({machine_path})"
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"error output in {path.name}"
        assert "papermill" not in cell.get("metadata", {}), "papermill timing metadata left in"
        tags = cell.get("metadata", {}).get("tags", [])
        assert "injected-parameters" not in tags, "a papermill-injected cell would pin the profile"
    assert "papermill" not in nb.get("metadata", {})


# ------------------------------------------------------------------------------------------ runner


def _write_notebook(folder: Path, name: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile: str = ""  # the profile')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / name
    nbformat.write(nb, path)
    return path


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A fake repository layout for the runner: notebooks/, figures/ and data/ under tmp_path."""
    for name in ("NOTEBOOKS", "DATA"):
        monkeypatch.setattr(store, name, tmp_path / name.lower())
    monkeypatch.setattr(store, "ROOT", tmp_path)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setitem(profiles.PROFILES, "smoke", profiles.PROFILES["smoke"])
    return tmp_path


def test_runner_keeps_good_outputs_when_a_notebook_fails(sandbox, capsys):
    figures = sandbox / profiles.get_profile("smoke").figures
    figures.mkdir(parents=True)
    (figures / "01_good.png").write_bytes(b"the good figure")
    _write_notebook(sandbox / "notebooks", "01_fails.ipynb", "\n".join([
        "import os, pathlib",
        "pathlib.Path(os.environ['MATHTX_FIGURES_DIR'], '01_good.png').write_bytes(b'half done')",
        "raise RuntimeError('boom')",
    ]))
    assert runner.run("smoke") == 1
    err = capsys.readouterr().err
    assert "01_fails.ipynb" in err and "cell 2" in err and "RuntimeError: boom" in err
    assert (figures / "01_good.png").read_bytes() == b"the good figure"  # not replaced by the staged one


def test_runner_publishes_figures_of_a_successful_notebook(sandbox):
    figures = sandbox / profiles.get_profile("smoke").figures
    figures.mkdir(parents=True)
    (figures / "01_stale.png").write_bytes(b"from an older version of the notebook")
    _write_notebook(sandbox / "notebooks", "01_ok.ipynb", "\n".join([
        "import os, pathlib",
        "assert os.environ['MATHTX_PROFILE'] == 'smoke'",
        "pathlib.Path(os.environ['MATHTX_FIGURES_DIR'], '01_new.png').write_bytes(b'new')",
    ]))
    assert runner.run("smoke") == 0
    assert (figures / "01_new.png").read_bytes() == b"new"
    assert not (figures / "01_stale.png").exists()
    executed = json.loads((sandbox / "data" / "executed" / "smoke" / "01_ok.ipynb").read_text())
    assert "papermill" not in executed["metadata"]


def test_runner_rejects_unknown_notebook_and_profile(sandbox):
    _write_notebook(sandbox / "notebooks", "01_ok.ipynb", "x = 1")
    with pytest.raises(ValueError, match="notebooks: 01_ok"):
        runner.notebook_paths(["07"])
    with pytest.raises(ValueError, match="valid profiles: smoke, cpu, gpu, paper"):
        profiles.get_profile("laptop")


def test_cli_bad_profile_is_one_clear_line():
    r = subprocess.run([sys.executable, "-m", "mathtx_helpers", "figures", "--profile", "laptop"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "invalid choice: 'laptop'" in r.stderr and "smoke" in r.stderr
    assert "Traceback" not in r.stderr


def test_profile_defaults_to_environment_then_cpu(monkeypatch):
    monkeypatch.delenv(profiles.PROFILE_ENV, raising=False)
    assert profiles.get_profile("").name == "cpu"
    monkeypatch.setenv(profiles.PROFILE_ENV, "smoke")
    assert profiles.get_profile("").name == "smoke"
    assert profiles.get_profile("gpu").name == "gpu"


def test_smoke_never_writes_the_reference_figures(monkeypatch):
    monkeypatch.delenv(store.FIGURES_ENV, raising=False)
    assert store.figures_dir(profiles.get_profile("smoke").figures).is_relative_to(store.ROOT / "data")
    assert store.figures_dir(profiles.get_profile("cpu").figures) == store.FIGURES


# ------------------------------------------------------------------------------------------ figures, writes


def _figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 0, 3], label="a line")
    ax.legend()
    return fig


def test_saved_figures_are_byte_identical_across_saves(tmp_path, monkeypatch):
    data = pd.DataFrame({"x": [0, 1, 2], "y": [1.0, 0.0, 3.0]})
    digests = []
    for i in range(2):
        monkeypatch.setenv(store.FIGURES_ENV, str(tmp_path / str(i)))
        paths = plots.save(_figure(), "99_test", data, profiles.get_profile("smoke").figures)
        assert paths == [f"data/figures/smoke/99_test.{e}" for e in ("png", "pdf", "csv")]
        digests.append([store.sha256(tmp_path / str(i) / f"99_test.{e}") for e in ("png", "pdf", "csv")])
    assert digests[0] == digests[1]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "0" / "99_test.csv"), data, check_dtype=False)
    plt.close("all")


def test_save_refuses_a_figure_without_its_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv(store.FIGURES_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="plotted numbers"):
        plots.save(_figure(), "99_test", pd.DataFrame(), profiles.get_profile("smoke").figures)
    with pytest.raises(ValueError, match="'smoke' is not a figures folder"):  # a profile name, the old signature
        plots.save(_figure(), "99_test", pd.DataFrame({"x": [1]}), "smoke")
    assert not list(tmp_path.iterdir())
    plt.close("all")


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path):
    target = tmp_path / "table.csv"
    store.write_text(target, "old\n")
    with pytest.raises(RuntimeError), store.atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary left behind


def test_atomic_write_gives_the_mode_of_a_plain_write(tmp_path, monkeypatch):
    """Not mkstemp's private 0600: a file written atomically gets what open() would give it, 0666 less the umask."""
    import os
    import stat

    for umask in (0o022, 0o077):
        monkeypatch.setattr(store, "UMASK", umask)  # what the module reads once, at import
        old = os.umask(umask)
        try:
            store.write_text(tmp_path / "atomic.txt", "x")  # a new file, then a replaced one
            store.write_text(tmp_path / "atomic.txt", "y")
            (tmp_path / f"plain-{umask:o}.txt").write_text("x")
        finally:
            os.umask(old)
        mode = stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)
        assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / f"plain-{umask:o}.txt").stat().st_mode)
