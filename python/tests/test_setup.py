"""Importing rfbsink in a Python that does not see GStreamer's bindings (pyenv, conda, a
python.org build, or a venv made without --system-site-packages): the error says what is missing
and how to get it, instead of a bare "No module named 'gi'"."""

import os
import shutil
import subprocess
import sys
import venv

import pytest

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM_PYTHON = "/usr/bin/python3"


def import_rfbsink(python):
    """Runs `import rfbsink` (this checkout's package) in `python`; returns (code, stderr)."""
    r = subprocess.run(
        [python, "-c", f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); import rfbsink"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
    )
    return r.returncode, r.stderr


def assert_explains(stderr, python):
    last = stderr.strip().splitlines()
    assert "rfbsink needs GStreamer's Python bindings" in stderr, stderr
    assert "No module named 'gi'" not in last[-1] or "rfbsink" in last[-1], stderr
    # What is missing, for which Python, and each way out.
    assert "PyGObject (the 'gi' module) is not visible" in stderr, stderr
    executable = subprocess.run(
        [python, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True, timeout=60
    ).stdout.strip()
    assert f"{executable} (Python 3." in stderr, stderr
    assert "sudo apt install python3-gi python3-gst-1.0" in stderr, stderr
    assert "/usr/bin/python3 -m venv --system-site-packages env" in stderr, stderr
    assert "pip install 'PyGObject<3.51'" in stderr, stderr
    assert "conda install -c conda-forge pygobject" in stderr, stderr


def test_a_venv_without_system_site_packages_is_told_the_fix(tmp_path):
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    python = str(env / "bin" / "python")
    code, stderr = import_rfbsink(python)
    assert code != 0
    assert_explains(stderr, python)
    assert "This is the system's Python" in stderr or "not the system's" in stderr, stderr


def test_a_python_that_is_not_the_systems_is_told_so():
    # pyenv is first on PATH on these machines; python3 there is what a scientist's README
    # reading would run. Without such a Python there is nothing to check here.
    other = shutil.which("python3")
    if other is None or os.path.realpath(other) == os.path.realpath(SYSTEM_PYTHON):
        pytest.skip("python3 on PATH is the system's: no other Python to try")
    probe = subprocess.run([other, "-c", "import gi"], capture_output=True, timeout=60)
    if probe.returncode == 0:
        pytest.skip(f"{other} sees a PyGObject of its own")
    code, stderr = import_rfbsink(other)
    assert code != 0
    assert_explains(stderr, other)
    assert "is not the system's" in stderr, stderr


def test_the_system_python_imports_it():
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("no /usr/bin/python3")
    code, stderr = import_rfbsink(SYSTEM_PYTHON)
    assert code == 0, stderr
    assert sys.version_info >= (3, 9)
