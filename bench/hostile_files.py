"""Hostile checkpoints against `weightlapse inspect`: what each does, what is said, and
the reader's peak memory (each in a fresh process). The README's table comes from here.

    python bench/hostile_files.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.io.test_hostile_files import (  # noqa: E402 - the tests build the files
    as_keras_file,
    h5_bomb,
    h5_with_external_link,
    h5_with_external_storage,
    h5_with_virtual_dataset,
    npy_liar,
    npz_bomb,
    onnx_with_external_data,
)

PEAK = (
    "import sys, runpy\n"
    "sys.argv = ['weightlapse', 'inspect', sys.argv[1]]\n"
    "try:\n"
    "    from weightlapse.cli import app\n"
    "    app()\n"
    "finally:\n"
    "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
    "    print('PEAK', int(hwm.split()[1]) // 1024, file=sys.stderr)\n"
)


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    secret = folder / "secret.txt"
    secret.write_text("top secret " * 20)
    cases = {}
    h5 = folder / "storage.h5"
    h5_with_external_storage(h5, secret)
    cases[".h5 dataset with external storage (a file outside)"] = h5
    h5 = folder / "link.h5"
    h5_with_external_link(h5, folder / "other.h5")
    cases[".h5 ExternalLink to another file"] = h5
    h5 = folder / "virtual.h5"
    h5_with_virtual_dataset(h5, folder / "other2.h5")
    cases[".h5 virtual dataset over another file"] = h5
    keras = folder / "link.keras"
    as_keras_file(keras, (folder / "link.h5").read_bytes())
    cases[".keras whose weights link outside"] = keras
    models = folder / "models"
    models.mkdir()
    cases[".onnx initializer with external data"] = onnx_with_external_data(models, "../secret.txt")
    for make, name, what in (
        (h5_bomb, "bomb.h5", ".h5 declaring 25000x25000 float32 (2.5 GB) in a few KB"),
        (npz_bomb, "bomb.npz", ".npz of 1.6 GB of zeros deflated to a few MB"),
        (npy_liar, "liar.npy", ".npy header claiming 10**12 elements"),
    ):
        make(folder / name)
        cases[what] = folder / name
    print("| file | size | exit | what weightlapse says (shortened) | peak memory |")
    print("| --- | --- | --- | --- | --- |")
    for what, path in cases.items():
        proc = subprocess.run(
            [sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True
        )
        said, _, peak = proc.stderr.rpartition("PEAK")
        line = said.strip().partition(": ")[2].replace(str(folder) + "/", "")[:110]
        size = path.stat().st_size
        print(f"| {what} | {size:,} B | {proc.returncode} | {line} | {int(peak)} MB |")


if __name__ == "__main__":
    main()
