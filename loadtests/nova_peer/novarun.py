"""Run code inside the Nova venv: scripts that use Nova's objects, and `nova-manage`."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from loadtests.nova_peer.venv import ensure_nova_venv, venv_python

SCRIPT_TIMEOUT_S = 300


class NovaCommandError(RuntimeError):
    """A script or nova-manage run in the Nova venv failed."""


def _environment(config_dir: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    if config_dir is not None:
        env["OS_NOVA_CONFIG_DIR"] = str(config_dir)
    return env


def _run(command: list[str], *, stdin: str | None, config_dir: Path | None, timeout: float) -> str:
    try:
        result = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            env=_environment(config_dir),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NovaCommandError(f"{command[:3]} did not finish in {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise NovaCommandError(
            f"{' '.join(command[:4])} … exited {result.returncode}:\n{result.stderr[-3000:]}"
        )
    return result.stdout


def run_in_nova(
    code: str,
    args: Sequence[str] = (),
    *,
    stdin: str | None = None,
    config_dir: Path | None = None,
    venv: Path | None = None,
    timeout: float = SCRIPT_TIMEOUT_S,
) -> str:
    """Run `code` with the Nova venv's Python (`sys.argv[1:]` = `args`); its stdout."""
    python = venv_python(venv or ensure_nova_venv())
    return _run(
        [str(python), "-c", code, *args], stdin=stdin, config_dir=config_dir, timeout=timeout
    )


def nova_manage(
    config_files: Sequence[Path],
    *args: str,
    venv: Path | None = None,
    timeout: float = SCRIPT_TIMEOUT_S,
) -> str:
    """`nova-manage --config-file … ARGS`, as an operator runs it."""
    folder = venv or ensure_nova_venv()
    command = [str(folder / "bin" / "nova-manage")]
    for config in config_files:
        command += ["--config-file", str(config)]
    return _run([*command, *args], stdin=None, config_dir=None, timeout=timeout)
