"""Time to export the CNN demo's run to TensorBoard, for each --images choice, against
drawing the same pictures as matplotlib figures (how the export drew them before).

    python bench/tensorboard_export.py
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import weightlapse
from weightlapse.demos.cnn import run_cnn
from weightlapse.io.export import _image_jobs, export_tensorboard


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = run_cnn("torch", Path(tmp) / "gallery")
        run = weightlapse.open(result.run_path)
        jobs = [(k, n) for k in run.kinds for n in run.names(k)]
        print(f"CNN demo run: {len(run.steps)} steps, {len(jobs)} tensor series")
        start = time.perf_counter()
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "weightlapse"),
                "export",
                str(result.run_path),
                "--tensorboard",
                str(Path(tmp) / "tb-cli"),
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        cli = time.perf_counter() - start
        print(f"`weightlapse export RUN --tensorboard DIR`, start to end: {cli:.2f} s")
        print("In this process, TensorBoard's writer imported once first:")
        import tensorboard.summary.writer.event_file_writer  # noqa: F401

        print("| images | pictures | seconds |")
        print("| --- | --- | --- |")
        for images in ("none", "snapshots", "all"):
            pictures = len(_image_jobs(run, jobs, images))
            start = time.perf_counter()
            export_tensorboard(run, Path(tmp) / f"tb-{images}", images=images)
            print(f"| {images} | {pictures} | {time.perf_counter() - start:.2f} |")
        start = time.perf_counter()
        drawings = _image_jobs(run, jobs, "snapshots")
        from weightlapse.views.registry import render

        for view, _kind, name, step in drawings:
            render(run, view, name, step=step).savefig(io.BytesIO(), format="png")
        print(f"| (as matplotlib figures) | {len(drawings)} | {time.perf_counter() - start:.2f} |")


if __name__ == "__main__":
    main()
