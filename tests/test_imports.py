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
