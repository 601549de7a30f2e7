"""`import weightlapse` needs no framework; using one that is missing names the extra."""

from tests.conftest import run_python

BLOCK = "import sys\nfor m in ('torch', 'keras', 'tensorflow', 'jax'):\n    sys.modules[m] = None\n"


def test_import_needs_no_framework():
    proc = run_python(
        BLOCK + "import weightlapse, numpy as np, tempfile\n"
        "p = tempfile.mkdtemp() + '/r'\n"
        "with weightlapse.create(p) as r: r.log(0, {'w': np.ones(2)})\n"
        "print(weightlapse.open(p).tensors)"
    )
    assert proc.stdout.strip() == "['w']"


def test_a_missing_framework_names_the_extra_to_install():
    proc = run_python(BLOCK + "import weightlapse.torch", check=False)
    assert proc.returncode != 0
    assert "pip install 'weightlapse[torch]'" in proc.stderr
    proc = run_python(BLOCK + "import weightlapse.keras", check=False)
    assert "pip install 'weightlapse[keras]'" in proc.stderr


def test_import_and_the_cli_load_no_heavy_library_until_used():
    # `weightlapse --help` stays fast: matplotlib, zarr and the frameworks load on first use
    proc = run_python(
        "import sys, weightlapse, weightlapse.cli\n"
        "heavy = ('matplotlib', 'zarr', 'torch', 'keras', 'starlette', 'numpy')\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "weightlapse.heatmap\n"
        "print('matplotlib' in sys.modules)"
    )
    assert proc.stdout.split() == ["[]", "True"]


def test_create_gives_a_writer_and_open_a_read_only_run(tmp_path):
    import numpy as np

    import weightlapse

    with weightlapse.create(tmp_path / "r") as writer:
        assert isinstance(writer, weightlapse.RunWriter)
        writer.log(0, {"w": np.ones(2)})
    run = weightlapse.open(tmp_path / "r")
    assert isinstance(run, weightlapse.Run) and not run.is_live
    assert not hasattr(run, "flush") and not hasattr(run, "set_meta")
    assert run.names("param") == ["w"] and run.names("grad") == []
