"""The Dockerfile, checked without a Docker engine: its instructions are read, then its build
and install commands and its CMD run in a fresh virtualenv, and its HEALTHCHECK probes that."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
GUEST_PORT, ADMIN_PORT = 8775, 9775


@dataclass
class Stage:
    base: str
    name: str | None
    # (instruction, arguments) in order, continuation lines joined.
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]

    def one(self, instruction: str) -> str:
        found = self.all(instruction)
        assert len(found) == 1, f"expected one {instruction} in stage {self.name}: {found}"
        return found[0]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV {args!r}: use KEY=VALUE"
                values[key] = value
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    joined = re.sub(r"\\\n", " ", text)
    stages: list[Stage] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            base, _, name = args.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None))
        else:
            assert stages, f"{instruction} before FROM"
            stages[-1].instructions.append((instruction, args))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def exec_form(args: str) -> list[str]:
    parsed = json.loads(args)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed)
    return parsed


def healthcheck_snippet(runtime: Stage) -> str:
    options, _, command = runtime.one("HEALTHCHECK").partition("CMD ")
    assert "--timeout=" in options and "--interval=" in options
    argv = exec_form(command)
    assert argv[:2] == ["python", "-c"] and len(argv) == 3
    return argv[2]


def test_two_slim_stages_and_only_the_wheel_crosses_between_them(stages: list[Stage]) -> None:
    build, runtime = stages
    assert build.base == runtime.base == "python:3.11-slim"
    assert build.name == "build"
    assert any("pip wheel" in run and "--no-deps" in run for run in build.all("RUN"))
    copies = runtime.all("COPY")
    assert copies == ["--from=build /wheels /wheels"]
    assert any(run.startswith("pip install") for run in runtime.all("RUN"))


def test_runtime_runs_as_a_non_root_user(stages: list[Stage]) -> None:
    runtime = stages[-1]
    user = runtime.one("USER").split(":")[0]
    assert user not in ("root", "0")
    assert any(f"useradd --system --uid {user}" in run for run in runtime.all("RUN"))


def test_both_ports_are_exposed_and_configured_by_environment(stages: list[Stage]) -> None:
    runtime = stages[-1]
    assert runtime.one("EXPOSE").split() == [str(GUEST_PORT), str(ADMIN_PORT)]
    env = runtime.env()
    assert env["METADATA_LISTEN"] == f"0.0.0.0:{GUEST_PORT}"
    assert env["METADATA_ADMIN_LISTEN"] == f"0.0.0.0:{ADMIN_PORT}"
    assert exec_form(runtime.one("CMD")) == ["metadata", "serve"]
    assert runtime.one("STOPSIGNAL") == "SIGTERM"


def test_the_build_context_holds_only_what_the_build_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!metadata"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(command: str, *, cwd: Path, timeout: float) -> None:
    result = subprocess.run(
        command, shell=True, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"


class Image:
    """The two stages' file systems under tmp_path; container paths are mapped into them."""

    def __init__(self, tmp_path: Path, stages: list[Stage]) -> None:
        self.build_root, self.runtime_root = tmp_path / "build", tmp_path / "runtime"
        self.venv = tmp_path / "venv"
        self.stages = stages

    def container_dirs(self) -> list[str]:
        """The image's own directories: each WORKDIR and what COPY --from carries."""
        dirs = [stage.one("WORKDIR") for stage in self.stages]
        for copy in self.stages[-1].all("COPY"):
            dirs += copy.split()[1:]
        return dirs

    def inside(self, root: Path, text: str) -> str:
        # A container path (/wheels, /var/lib/metadata, …) becomes the same path under root.
        pattern = "|".join(re.escape(d) for d in self.container_dirs())
        return re.sub(rf"({pattern})(?![\w.-])", lambda m: f"{root}{m.group(1)}", text)

    def shell(self, root: Path, command: str) -> str:
        command = self.inside(root, command)
        # The image's pip is the fresh venv's; the pip cache is kept (the same files either way).
        command = re.sub(r"\bpip\b", str(self.venv / "bin" / "pip"), command)
        command = command.replace("--no-cache-dir ", "")
        # Never let a command such as `rm -rf /wheels` reach this machine's own directories.
        for word in shlex.split(command):
            assert not word.startswith("/") or word.startswith(str(root.parent)), command
        return command

    def build(self) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True, timeout=60)
        build, runtime = self.stages
        workdir = Path(self.inside(self.build_root, build.one("WORKDIR")))
        workdir.mkdir(parents=True)
        for copy in build.all("COPY"):
            *sources, dest = copy.split()
            for source in sources:
                # Docker's COPY: a directory's contents go to dest; a file into dest/ or as dest.
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source, workdir / dest, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(
                        ROOT / source,
                        workdir / dest / Path(source).name
                        if dest.endswith("/")
                        else workdir / dest,
                    )
        for command in build.all("RUN"):
            run(self.shell(self.build_root, command), cwd=workdir, timeout=60)
        for copy in runtime.all("COPY"):
            _, source, dest = copy.split()
            shutil.copytree(
                self.inside(self.build_root, source), self.inside(self.runtime_root, dest)
            )
        for command in runtime.all("RUN"):
            if command.startswith("pip "):  # useradd would change this machine: checked above
                run(self.shell(self.runtime_root, command), cwd=self.runtime_root, timeout=75)

    def environ(self, **overrides: str) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("METADATA_", "PYTHON"))}
        for key, value in self.stages[-1].env().items():
            environ[key] = self.inside(self.runtime_root, value)
        environ["PATH"] = f"{self.venv / 'bin'}:{environ.get('PATH', '')}"
        return environ | overrides


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, stages: list[Stage]) -> Image:
    if not README.exists():
        pytest.skip("README.md is absent: the build stage copies it (pyproject's readme)")
    built = Image(tmp_path_factory.mktemp("image"), stages)
    built.build()
    return built


@pytest.fixture
def container(image: Image) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    admin_port = free_port()
    environ = image.environ(
        METADATA_LISTEN=f"127.0.0.1:{free_port()}",
        METADATA_ADMIN_LISTEN=f"127.0.0.1:{admin_port}",
        METADATA_SHUTDOWN_GRACE="2",
    )
    workdir = Path(image.inside(image.runtime_root, image.stages[-1].one("WORKDIR")))
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            exec_form(image.stages[-1].one("CMD")),
            env=environ,
            cwd=workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"not healthy within 30s:\n{log.read_text()}")
        yield process, admin_port, workdir
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def healthcheck(image: Image, admin_listen: str) -> subprocess.CompletedProcess[str]:
    snippet = healthcheck_snippet(image.stages[-1])
    return subprocess.run(
        [str(image.venv / "bin" / "python"), "-c", snippet],
        env=image.environ(METADATA_ADMIN_LISTEN=admin_listen),
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_the_installed_wheel_serves_and_passes_the_healthcheck_until_stopped(
    image: Image, container: tuple[subprocess.Popen[bytes], int, Path]
) -> None:
    process, admin_port, workdir = container
    # The wheel, not the source tree, is what runs.
    where = subprocess.run(
        [str(image.venv / "bin" / "python"), "-c", "import metadata; print(metadata.__file__)"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert where.stdout.startswith(str(image.venv / "lib"))
    # No token configured: one was generated into METADATA_ADMIN_TOKEN_FILE, owner-only.
    token_file = Path(image.environ()["METADATA_ADMIN_TOKEN_FILE"])
    assert token_file.stat().st_mode & 0o777 == 0o600

    # As the container runs it (wildcard bind), and as an operator might (explicit address).
    for admin_listen in (f"0.0.0.0:{admin_port}", f"127.0.0.1:{admin_port}"):
        probe = healthcheck(image, admin_listen)
        assert probe.returncode == 0, probe.stderr

    process.terminate()
    assert process.wait(timeout=15) == 0
    assert healthcheck(image, f"0.0.0.0:{admin_port}").returncode != 0


def test_readme_gives_the_same_commands_and_ports_as_the_dockerfile(stages: list[Stage]) -> None:
    if not README.exists():
        pytest.skip("README.md is absent")
    readme = README.read_text()
    runtime = stages[-1]
    assert "docker build" in readme
    assert " ".join(exec_form(runtime.one("CMD"))) in readme
    for port in runtime.one("EXPOSE").split():
        assert port in readme
    for name in ("METADATA_LISTEN", "METADATA_ADMIN_LISTEN"):
        assert name in readme
