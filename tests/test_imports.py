import subprocess
import sys


def test_cli_and_config_validation_do_not_import_heavy_libraries(tiny_campaign):
    code = (
        "import sys\n"
        "from bodisc.cli import app\n"
        "from bodisc.config import load_campaign\n"
        f"load_campaign({str(tiny_campaign)!r})\n"
        "heavy = [m for m in ('torch', 'botorch', 'gpytorch', 'mlflow', 'tblite', 'pyscf')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == ""


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "bodisc.cli", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    assert "campaign" in out.stdout and "validate" in out.stdout
