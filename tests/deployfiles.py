"""Reading the deployment files in ``deploy/`` as the tools that use them would, for
tests/test_deploy.py: the linters installed by the dev extra, what ``kubectl kustomize`` and
``docker compose config`` make of the files, and the names membot's code offers (subcommands,
settings)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo

from adapters import cli
from bot.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

Manifest = dict[str, Any]


def tool(name: str) -> str:
    """A linter the dev extra installs: beside this Python, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    assert found is not None, f"{name} is missing: install the dev extra (pip install -e '.[dev]')"
    return found


def run(*args: str, cwd: Path = ROOT) -> str:
    """Run a linter; its output if it exits 0, else the test fails with what it said. Nothing
    of the caller's environment but PATH and HOME reaches it (COMPOSE_PROFILES or a variable
    compose.yaml interpolates would change what Compose reads)."""
    env = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


def k8s_objects(*names: str) -> list[Manifest]:
    """The objects of the named files in deploy/k8s (every file with none named)."""
    paths = [K8S / name for name in names] or sorted(K8S.glob("*.yaml"))
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text())
            if doc is not None and doc.get("kind") != "Kustomization"]


def kustomize_build() -> list[Manifest]:
    """What ``kubectl apply -k deploy/k8s`` would send."""
    out = run(tool("kubectl"), "kustomize", str(K8S))
    return [doc for doc in yaml.safe_load_all(out) if doc is not None]


def compose_config(tmp: Path, env_file: str, *profiles: str) -> Manifest:
    """``docker compose config`` of deploy/compose.yaml in a copy of deploy/ whose .env is
    ``env_file``: what Compose would run, with every .env value merged into each service."""
    (tmp / "deploy").mkdir()
    for name in ("compose.yaml", "Dockerfile"):
        shutil.copy(DEPLOY / name, tmp / "deploy" / name)
    (tmp / "deploy" / ".env").write_text(env_file)
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    out = run(tool("docker-compose"), *flags, "config", "--format", "json", cwd=tmp / "deploy")
    config: Manifest = json.loads(out)
    return config


def membot_services(config: Manifest) -> dict[str, Manifest]:
    return {name: service for name, service in config["services"].items()
            if service.get("image") == "membot:local"}


def containers(objects: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """(workload, container) for every container of a Deployment, StatefulSet or Job."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                yield obj, container


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in lines if line and not line.startswith("#")]


def variables_of(field: FieldInfo) -> set[str]:
    """The environment variables a setting is read from (aliases included)."""
    alias = field.validation_alias
    assert isinstance(alias, AliasChoices)
    return {choice for choice in alias.choices if isinstance(choice, str)}


def setting_names() -> set[str]:
    """Every environment variable a membot setting is read from."""
    return set().union(*map(variables_of, Settings.model_fields.values()))


def secret_setting_names() -> set[str]:
    """The variables of settings typed ``SecretStr``: tokens, keys, DATABASE_URL."""
    return set().union(*(
        variables_of(field) for field in Settings.model_fields.values()
        if field.annotation is SecretStr or SecretStr in typing.get_args(field.annotation)
    ))


def subcommands() -> set[str]:
    """The subcommands of the real ``membot`` parser."""
    parser = cli._parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(action.choices)


def pod_env(container: Manifest, objects: list[Manifest]) -> dict[str, str]:
    """A container's environment as Kubernetes builds it: envFrom (ConfigMaps, Secrets) in
    order, then env. Secrets come from secret.example.yaml."""
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(by_name["ConfigMap", source["configMapRef"]["name"]]["data"])
        else:
            env.update(by_name["Secret", source["secretRef"]["name"]]["stringData"])
    env.update({var["name"]: var["value"] for var in container.get("env", [])})
    return env


def settings_of(env: dict[str, str]) -> Settings:
    """The settings a process with this environment gets (no .env file)."""
    return load_settings(env, None)
