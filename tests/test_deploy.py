"""The deployment files in ``deploy/`` against the linters of their formats and against the code
they deploy.

Linters (installed by the dev extra, run as an operator would): yamllint on every YAML file,
hadolint on the Dockerfile, ``docker compose config`` on compose.yaml, ``kubectl kustomize`` on
deploy/k8s and kubernetes-validate (Kubernetes' own schemas, strict) on what it builds. None of
them needs a Docker engine, a cluster or the network.

Against the code: every ``membot`` subcommand the files run is one the CLI's parser offers,
every variable they set is a membot setting (or a documented variable of Compose, the postgres
image, Python or pip) and parses as one, secrets stay out of plain config, probe and Ingress
paths are routes of the real web app, the Discord processes hold every shard exactly once, and
the Kubernetes objects refer to each other correctly.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import yaml
from dotenv import dotenv_values

from adapters import processes
from adapters.slack import build_app, web_client
from adapters.web import build_web_app
from bot.app import services
from bot.config import Settings
from tests.conftest import serve_web
from tests.deployfiles import (
    DEPLOY,
    K8S,
    ROOT,
    Manifest,
    compose_config,
    containers,
    dockerfile_instructions,
    k8s_objects,
    kustomize_build,
    membot_services,
    pod_env,
    run,
    secret_setting_names,
    setting_names,
    settings_of,
    subcommands,
    tool,
    yaml_files,
)
from tests.fakes.slack import FakeSlack

WEB_PORT = 8000  # the port web containers listen on (PORT)
WORKER_PORT = 9100  # a worker's health and metrics port (WORKER_METRICS_PORT)

# Variables the deploy files set that are not membot's, each documented where it is read.
PLATFORM_VARIABLES = {
    # docs.docker.com/compose/how-tos/environment-variables/envvars/ (read from deploy/.env)
    "COMPOSE_PROFILES": "Docker Compose",
    # hub.docker.com/_/postgres (pgvector/pgvector is that image with pgvector added)
    "POSTGRES_USER": "the postgres image",
    "POSTGRES_DB": "the postgres image",
    "POSTGRES_PASSWORD": "the postgres image",
    # docs.python.org/3/using/cmdline.html#environment-variables
    "PATH": "the shell",
    "PYTHONDONTWRITEBYTECODE": "Python",
    "PYTHONUNBUFFERED": "Python",
    # pip.pypa.io/en/stable/topics/configuration/#environment-variables
    "PIP_NO_CACHE_DIR": "pip",
    "PIP_DISABLE_PIP_VERSION_CHECK": "pip",
}


@pytest.fixture(scope="module")
def built() -> list[Manifest]:
    """What ``kubectl apply -k deploy/k8s`` would send."""
    return kustomize_build()


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """The compose stack with every optional service, on deploy/.env.example."""
    return compose_config(tmp_path_factory.mktemp("compose"),
                          (DEPLOY / ".env.example").read_text(),
                          "local-db", "discord", "slack-socket")


# --- linters --------------------------------------------------------------------------------


def test_every_yaml_file_under_deploy_parses_and_passes_yamllint() -> None:
    files = yaml_files()
    assert len(files) >= 9 and DEPLOY / "compose.yaml" in files
    for path in files:
        assert list(yaml.safe_load_all(path.read_text())), f"{path} is empty"
    rules = "{extends: default, rules: {line-length: {max: 100}, document-start: disable}}"
    run(tool("yamllint"), "--strict", "-f", "parsable", "-d", rules, *map(str, files))


def test_the_dockerfile_passes_hadolint() -> None:
    assert run(tool("hadolint"), "--no-color", str(DEPLOY / "Dockerfile")) == ""


def test_the_image_holds_every_package_and_file_the_build_needs() -> None:
    """A top-level package added to pyproject but not copied would be missing from the image
    while every test here still passed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    needed = packages | {"pyproject.toml", project["project"]["readme"]}
    copied = {source for instruction, args in dockerfile_instructions() if instruction == "COPY"
              and not args.startswith("--from") for source in args.split()[:-1]}
    assert needed <= copied
    # The build context is the repository; its ignore file lets in only what is copied.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore and {f"!{name}" for name in needed} <= set(ignore)


def test_compose_passes_docker_compose_config(compose: Manifest) -> None:
    names = set(compose["services"])
    assert {"postgres", "migrate", "web", "worker", "discord-0", "discord-1", "slack"} <= names
    assert compose["services"]["web"]["deploy"]["replicas"] == 2
    assert compose["services"]["worker"]["deploy"]["replicas"] == 2


def test_every_membot_service_in_compose_waits_for_the_migration(compose: Manifest) -> None:
    for name, service in membot_services(compose).items():
        if name != "migrate":
            assert service["depends_on"]["migrate"]["condition"] == (
                "service_completed_successfully"), name
    assert compose["services"]["migrate"]["depends_on"]["postgres"]["condition"] == (
        "service_healthy")


def test_compose_runs_on_supabase_without_the_local_postgres(tmp_path: Path) -> None:
    """Without the local-db profile there is no postgres service, and the migration (so every
    membot service) starts without it, on DATABASE_URL from .env."""
    supabase = ("postgresql://postgres.ref:secret@aws-0-eu-west-1.pooler.supabase.com:5432/"
                "postgres")
    env = (DEPLOY / ".env.example").read_text()
    env = re.sub(r"(?m)^COMPOSE_PROFILES=.*$", "COMPOSE_PROFILES=discord", env)
    env = re.sub(r"(?m)^POSTGRES_PASSWORD=.*$", "", env)
    env = re.sub(r"(?m)^DATABASE_URL=.*$", f"DATABASE_URL={supabase}", env)
    config = compose_config(tmp_path, env)
    assert "postgres" not in config["services"]
    assert config["services"]["migrate"]["depends_on"]["postgres"]["required"] is False
    for service in membot_services(config).values():
        assert service["environment"]["DATABASE_URL"] == supabase
    assert {"discord-0", "discord-1", "web", "worker"} <= set(config["services"])


def test_the_kubernetes_manifests_build_and_pass_kubernetes_schemas(
    built: list[Manifest], tmp_path: Path
) -> None:
    kinds = sorted(obj["kind"] for obj in built)
    assert kinds.count("Deployment") == 4 and "Job" in kinds and "Ingress" in kinds
    assert {obj["metadata"]["namespace"] for obj in built} == {"membot"}
    rendered = tmp_path / "built.yaml"
    rendered.write_text(yaml.safe_dump_all(built))
    # The oldest Kubernetes these are for, and the newest the validator knows.
    for version in (["-k", "1.30.0"], []):
        run(tool("kubernetes-validate"), "--strict", "--quiet", *version,
            str(rendered), str(K8S / "secret.example.yaml"))


def test_the_kustomization_lists_every_manifest_but_the_examples() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    optional = {"kustomization.yaml", "secret.example.yaml", "servicemonitor.yaml"}
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name not in optional)


# --- against the code -----------------------------------------------------------------------


def used_subcommands(compose: Manifest, built: list[Manifest]) -> dict[str, set[str]]:
    """Where each ``membot`` subcommand is run: file -> subcommands."""
    used: dict[str, set[str]] = {"compose.yaml": set(), "k8s": set(), "Dockerfile": set()}
    for service in membot_services(compose).values():
        used["compose.yaml"].add(service["command"][0])
    for _, container in containers(built):
        assert "command" not in container, "the image's entry point is membot"
        used["k8s"].add(container["args"][0])
    instructions = dict(dockerfile_instructions())
    assert json.loads(instructions["ENTRYPOINT"]) == ["membot"]
    used["Dockerfile"].add(json.loads(instructions["CMD"])[0])
    return used


def test_every_membot_subcommand_the_deploy_files_run_exists(
    compose: Manifest, built: list[Manifest]
) -> None:
    used = used_subcommands(compose, built)
    assert used == {
        "compose.yaml": {"migrate", "web", "worker", "discord", "slack"},
        "k8s": {"migrate", "web", "worker", "discord"},
        "Dockerfile": {"run"},
    }
    unknown = set().union(*used.values()) - subcommands()
    assert unknown == set(), f"membot has no subcommand {sorted(unknown)}"


def deploy_variables() -> dict[str, set[str]]:
    """Every environment variable named in deploy/: file -> names."""
    names: dict[str, set[str]] = {}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    names["compose.yaml"] = {
        name for service in compose["services"].values()
        for name in service.get("environment", {})
    } | set(re.findall(r"\$\{(\w+)", (DEPLOY / "compose.yaml").read_text()))
    names[".env.example"] = set(dotenv_values(DEPLOY / ".env.example"))
    objects = k8s_objects()
    names["k8s"] = {
        name for obj in objects if obj["kind"] in ("ConfigMap", "Secret")
        for name in obj.get("data", {}) | obj.get("stringData", {})
    } | {var["name"] for _, container in containers(objects) for var in container.get("env", [])}
    names["Dockerfile"] = {
        pair.split("=", 1)[0] for instruction, args in dockerfile_instructions()
        if instruction == "ENV" for pair in args.split()
    }
    return names


def test_every_variable_the_deploy_files_set_is_a_setting_or_documented() -> None:
    variables = deploy_variables()
    assert {"DATABASE_URL", "DISCORD_SHARD_IDS", "MEMBOT_DATA_DIR", "PORT"} <= set().union(
        *variables.values())
    known = setting_names() | set(PLATFORM_VARIABLES)
    unknown = {f"{where}: {name}" for where, names in variables.items()
               for name in names - known}
    assert unknown == set(), "not a membot setting nor a documented platform variable"


def test_every_process_s_environment_parses_as_settings(
    compose: Manifest, built: list[Manifest]
) -> None:
    """What each process would start with, from .env.example and the Secret's example: a bad
    value (a shard id out of range, a malformed URL) fails here, not at the first deploy."""
    for name, service in membot_services(compose).items():
        settings = settings_of(service["environment"])
        assert settings.database_url is not None, name
    objects = [*built, *k8s_objects("secret.example.yaml")]
    for workload, container in containers(objects):
        settings = settings_of(pod_env(container, objects))
        assert settings.database_url is not None and settings.supabase_key is not None
        if container["args"][0] == "web":
            # Signing secret, no app token: the web pods serve Slack's events (HTTP mode).
            assert processes.slack_mode(settings) == "http", workload["metadata"]["name"]


def test_no_secret_is_kept_in_plain_configuration() -> None:
    secrets = secret_setting_names()
    assert {"DATABASE_URL", "DISCORD_TOKEN", "SLACK_SIGNING_SECRET"} <= secrets
    (config,) = [o for o in k8s_objects("config.yaml") if o["kind"] == "ConfigMap"]
    assert set(config["data"]) & secrets == set()
    plain = {var["name"] for _, c in containers(k8s_objects()) for var in c.get("env", [])
             if "value" in var}
    assert plain & secrets == set()
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert {n for s in compose["services"].values() for n in s.get("environment", {})} & (
        secrets) == set()
    (secret,) = k8s_objects("secret.example.yaml")
    assert set(secret["stringData"]) <= secrets  # the Secret holds secrets only


def discord_processes(envs: list[dict[str, str]]) -> None:
    """Processes sharing one bot: one shard count, every shard held once, shard 0 included."""
    shards = [settings_of(env) for env in envs]
    counts = {s.discord_shard_count for s in shards}
    assert len(counts) == 1 and None not in counts, counts
    held = [i for s in shards for i in (s.discord_shard_ids or ())]
    assert sorted(held) == list(range(counts.pop() or 0)), held


def test_the_discord_processes_hold_every_shard_exactly_once(
    compose: Manifest, built: list[Manifest]
) -> None:
    discord_processes([s["environment"] for s in membot_services(compose).values()
                       if s["command"][0] == "discord"])
    objects = [*built, *k8s_objects("secret.example.yaml")]
    discord_processes([pod_env(c, objects) for _, c in containers(objects)
                       if c["args"][0] == "discord"])


def probes(compose: Manifest, built: list[Manifest]) -> dict[int, set[str]]:
    """Port -> paths that health checks and probes ask for."""
    asked: dict[int, set[str]] = {}
    for service in compose["services"].values():
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        for port, path in re.findall(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", test):
            asked.setdefault(int(port), set()).add(path)
    for _, container in containers(built):
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if kind in container:
                get = container[kind]["httpGet"]
                asked.setdefault(ports[get["port"]], set()).add(get["path"])
    return asked


def test_probes_ask_the_ports_the_processes_listen_on(
    compose: Manifest, built: list[Manifest]
) -> None:
    assert set(probes(compose, built)) == {WEB_PORT, WORKER_PORT}
    services = compose["services"]
    assert services["web"]["environment"]["PORT"] == str(WEB_PORT)
    assert services["web"]["ports"][0]["target"] == WEB_PORT
    assert services["worker"]["environment"]["WORKER_METRICS_PORT"] == str(WORKER_PORT)
    for _, container in containers(built):
        env = {var["name"]: var["value"] for var in container.get("env", [])}
        port = {"web": "PORT", "worker": "WORKER_METRICS_PORT"}.get(container["args"][0])
        if port is not None:
            assert [p["containerPort"] for p in container["ports"]] == [int(env[port])]


@pytest.fixture
async def web_routes(
    make_settings: Callable[..., Settings], slack_fake: FakeSlack
) -> AsyncIterator[tuple[str, set[str]]]:
    """The web app as ``membot web`` builds it with Slack in HTTP mode and linking: its address
    and its routes."""
    async with services(make_settings()) as app:
        slack = build_app(client=web_client(slack_fake.bot_token, slack_fake.api_url),
                          handle=app.core.handle, commands=app.commands,
                          signing_secret=slack_fake.signing_secret)
        web_app = build_web_app(linking=app.linking, slack=slack, readiness=app.readiness,
                                metrics=app.metrics)
        routes = {resource.canonical for resource in web_app.router.resources()}
        runner, port = await serve_web(web_app)
        try:
            yield f"http://127.0.0.1:{port}", routes
        finally:
            await runner.cleanup()


async def test_probe_paths_answer_on_the_real_web_app(
    compose: Manifest, built: list[Manifest], web_routes: tuple[str, set[str]]
) -> None:
    """The web port's probes get 200 from the web app; the worker's are the same paths on its
    own port (``membot worker`` serves the same app without its pages)."""
    url, routes = web_routes
    asked = probes(compose, built)
    assert asked[WORKER_PORT] <= asked[WEB_PORT] == {"/healthz", "/readyz"}
    async with aiohttp.ClientSession() as session:
        for path in asked[WEB_PORT]:
            async with session.get(url + path) as response:
                assert response.status == 200, path
    assert asked[WEB_PORT] - routes == set()


async def test_the_ingress_sends_only_pages_and_slack_events_to_real_routes(
    built: list[Manifest], web_routes: tuple[str, set[str]]
) -> None:
    url, routes = web_routes
    (ingress,) = [o for o in built if o["kind"] == "Ingress"]
    paths = {p["path"]: p["pathType"] for rule in ingress["spec"]["rules"]
             for p in rule["http"]["paths"]}
    assert paths == {"/slack/events": "Exact", "/link": "Prefix", "/static": "Prefix"}
    for path, kind in paths.items():
        matching = {r for r in routes if r == path or r.startswith(path + "/")}
        assert matching if kind == "Prefix" else matching == {path}, path
    async with aiohttp.ClientSession() as session, session.post(
        url + "/slack/events", data=b"{}"
    ) as response:
        assert response.status == 401  # bolt's answer to an unsigned request: Slack's route


def test_the_kubernetes_objects_refer_to_each_other(built: list[Manifest]) -> None:
    workloads = [o for o in built if o["kind"] in ("Deployment", "Job")]
    by_kind: dict[str, dict[str, Manifest]] = {}
    for obj in built:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj

    def matches(selector: dict[str, str]) -> list[Manifest]:
        return [w for w in workloads if w["kind"] == "Deployment"
                and selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]

    for deployment in by_kind["Deployment"].values():
        assert matches(deployment["spec"]["selector"]["matchLabels"]) == [deployment]
    for _, container in containers(built):
        for source in container["envFrom"]:
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in by_kind["ConfigMap"]
            else:
                (secret,) = k8s_objects("secret.example.yaml")
                assert source["secretRef"]["name"] == secret["metadata"]["name"]
    for service in by_kind["Service"].values():
        (target,) = matches(service["spec"]["selector"])
        names = {p["name"] for c in target["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    for rule in by_kind["Ingress"]["membot-web"]["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = by_kind["Service"][backend["name"]]
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    for budget in by_kind["PodDisruptionBudget"].values():
        (target,) = matches(budget["spec"]["selector"]["matchLabels"])
        assert budget["spec"]["minAvailable"] < target["spec"]["replicas"]  # drains can proceed
    for monitor in k8s_objects("servicemonitor.yaml"):
        selected = [s for s in by_kind["Service"].values()
                    if monitor["spec"]["selector"]["matchLabels"].items()
                    <= s["metadata"]["labels"].items()]
        assert len(selected) == 1
        ports = {p["name"] for p in selected[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports


def test_the_guides_first_apply_brings_only_the_config_and_the_migration(
    built: list[Manifest]
) -> None:
    """docs/deployment.md migrates before anything else starts by applying a label selection
    first."""
    readme = (ROOT / "docs" / "deployment.md").read_text()
    (selector,) = re.findall(r"kubectl apply -k deploy/k8s -l '([^']+)'", readme)
    match = re.fullmatch(r"([\w./-]+) in \(([\w,-]+)\)", selector)
    assert match is not None, selector
    key, values = match[1], match[2].split(",")
    chosen = {(obj["kind"], obj["metadata"]["name"]) for obj in built
              if obj["metadata"].get("labels", {}).get(key) in values}
    assert chosen == {("ConfigMap", "membot-config"), ("Job", "membot-migrate")}
    assert "wait --for=condition=complete job/membot-migrate" in readme
