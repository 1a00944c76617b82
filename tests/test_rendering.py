"""Executed notebooks for the book: paths below the root made relative, the run's parameters labelled."""

import nbformat

from craving_circuits.book.rendering import INJECTED_HEADER, book_ready, relative_to_root


def test_paths_below_the_root_become_relative_and_others_stay(tmp_path):
    root = tmp_path / "book"
    root.mkdir()
    text = f"{root}/results/x.tsv and {root} and {root}ier/y and /elsewhere/{root.name}/z, '{root}'"
    assert relative_to_root(text, root) == f"results/x.tsv and . and {root}ier/y and /elsewhere/{root.name}/z, '.'"
    # the root as given (relative, or through a symbolic link) and resolved are both recognised
    link = tmp_path / "link"
    link.symlink_to(root)
    assert relative_to_root(f"{root}/a", link) == "a"
    assert relative_to_root(f"{link}/a", link) == "a"


def test_book_ready_rewrites_sources_and_text_outputs_and_labels_the_injected_cell(tmp_path):
    root = tmp_path / "repo"
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "paper"\ndata_dir = "data"')
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell(f'# Parameters\npreset = "null"\ndata_dir = "{root}/data"\n')
    injected.metadata["tags"] = ["injected-parameters"]
    shown = nbformat.v4.new_code_cell("study")
    shown.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=f"read {root}/data/cocaine-null\n"),
        nbformat.v4.new_output(
            "execute_result",
            data={"text/plain": f"{root}/x", "text/html": f"<td>{root}/x</td>", "image/png": "iVBORw0KGgo="},
            execution_count=1,
        ),
        nbformat.v4.new_output("error", ename="E", evalue=f"no {root}/y", traceback=[f"File {root}/z.py"]),
    ]
    nb.cells = [params, injected, shown]
    original = nbformat.writes(nb)
    ready = book_ready(nb, root)
    assert nbformat.writes(nb) == original  # the input is not changed
    text = nbformat.writes(ready)
    assert str(root) not in text
    assert ready.cells[1].source.splitlines() == [INJECTED_HEADER, 'preset = "null"', 'data_dir = "data"']
    assert ready.cells[0].source == params.source
    out = ready.cells[2].outputs
    assert out[0]["text"] == "read data/cocaine-null\n"
    assert out[1]["data"]["text/html"] == "<td>x</td>" and out[1]["data"]["image/png"] == "iVBORw0KGgo="
    assert out[2]["evalue"] == "no y" and out[2]["traceback"] == ["File z.py"]
    nbformat.validate(ready)


def test_a_variant_run_gets_its_own_title(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# NAcc seed connectivity\n\nDoes the film raise coupling?")]
    ready = book_ready(nb, tmp_path, title="NAcc seed connectivity: the null study")
    assert ready.cells[0].source == "# NAcc seed connectivity: the null study\n\nDoes the film raise coupling?"
    assert book_ready(nb, tmp_path).cells[0].source == nb.cells[0].source
    untitled = nbformat.v4.new_notebook()
    untitled.cells = [nbformat.v4.new_code_cell("x = 1")]
    assert book_ready(untitled, tmp_path, title="T").cells[0].source == "# T"


def test_each_run_refers_to_its_own_figures(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("{numref}`fig-deltas` shows it; see also {numref}`Figure %s <fig-deltas>`."),
        nbformat.v4.new_markdown_cell("```{glue:figure} deltas\n:name: fig-deltas\n:alt: x\n\nCaption.\n```"),
        nbformat.v4.new_markdown_cell("fig-deltas-other stays; so does fig-deltasx"),
        nbformat.v4.new_markdown_cell("(tbl-roi)=\nThe ROI tests, also in {ref}`the table <tbl-roi>`."),
    ]
    ready = book_ready(nb, tmp_path, run="nacc_seed_fc_null")
    assert ready.cells[0].source == (
        "{numref}`fig-deltas-nacc_seed_fc_null` shows it; see also {numref}`Figure %s <fig-deltas-nacc_seed_fc_null>`."
    )
    assert ":name: fig-deltas-nacc_seed_fc_null\n" in ready.cells[1].source
    assert "```{glue:figure} deltas\n" in ready.cells[1].source  # the glue key is the page's own
    assert ready.cells[2].source == nb.cells[2].source
    assert ready.cells[3].source == (
        "(tbl-roi-nacc_seed_fc_null)=\nThe ROI tests, also in {ref}`the table <tbl-roi-nacc_seed_fc_null>`."
    )
    assert book_ready(ready, tmp_path, run="nacc_seed_fc_null").cells[1].source == ready.cells[1].source
