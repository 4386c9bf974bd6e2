"""docker-compose.yml cannot run here (no engine); check it against the project's own files instead."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from dagster._core.instance.config import dagster_instance_config


def _compose(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "docker-compose.yml").read_text())


def test_services_images_and_commands(repo_root: Path):
    services = _compose(repo_root)["services"]
    assert set(services) == {"postgres", "user_code", "webserver", "daemon"}
    assert services["postgres"]["image"].startswith("postgres:")
    image = services["user_code"]["image"]
    assert services["user_code"]["build"] == "." and (repo_root / "Dockerfile").exists()
    assert services["webserver"]["image"] == image and services["daemon"]["image"] == image
    user_code = services["user_code"]["command"]
    assert user_code[:3] == ["dagster", "code-server", "start"]
    module = user_code[user_code.index("-m") + 1]
    assert (repo_root / Path(*module.split("."))).with_suffix(".py").exists()
    port = user_code[user_code.index("-p") + 1]
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    # the webserver and daemon start only once the code server answers its health check
    assert services["user_code"]["healthcheck"]["test"][1:4] == ["dagster", "api", "grpc-health-check"]
    assert services["user_code"]["healthcheck"]["test"][-1] == port
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["user_code"]["condition"] == "service_healthy"
    assert "/server_info" in " ".join(services["webserver"]["healthcheck"]["test"])
    workspace = yaml.safe_load((repo_root / "docker" / "workspace.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert server["host"] == "user_code" and str(server["port"]) == port


def test_mounted_config_files_exist_and_are_valid_instances(repo_root: Path, tmp_path: Path):
    services = _compose(repo_root)["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (repo_root / source).exists(), f"{name} mounts {source}, which the repo lacks"
    env = services["user_code"]["environment"]
    assert {"DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_USER", "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_DB"} <= set(env)
    for instance_yaml in [repo_root / "dagster.yaml", repo_root / "docker" / "dagster.yaml"]:
        home = tmp_path / instance_yaml.parent.name
        home.mkdir()
        (home / "dagster.yaml").write_text(instance_yaml.read_text())
        config, _ = dagster_instance_config(str(home))
        assert config["telemetry"]["enabled"] is False
        assert config["run_monitoring"]["enabled"] is True
    docker_config = yaml.safe_load((repo_root / "docker" / "dagster.yaml").read_text())
    assert "postgres" in docker_config["storage"]
    assert docker_config["storage"]["postgres"]["postgres_db"]["hostname"]["env"] in env


def test_docker_build_context_is_only_what_the_image_copies(repo_root: Path):
    """A checkout after the main job holds .venv and artifacts/ (GBs): .dockerignore keeps them out."""
    import fnmatch

    rules = [line.strip() for line in (repo_root / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]

    def excluded(path: str) -> bool:
        verdict = False
        for rule in rules:
            negate = rule.startswith("!")
            pattern = rule[1:] if negate else rule
            top = pattern.rstrip("/")
            if fnmatch.fnmatch(path, top) or path.startswith(top + "/") or fnmatch.fnmatch(path, pattern):
                verdict = not negate
        return verdict

    for big in (".venv/bin/python", "artifacts/evaluation/eval_report.json", ".dagster_home/dagster.yaml",
                ".venv-vllm/bin/python", "tests/test_compose.py"):
        assert excluded(big), f"{big} would be sent as build context"
    copied = [source for line in (repo_root / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")
              for source in line.split()[1:-1]]
    assert "README.md" in copied and "agentscaler_dagster" in copied
    for source in copied:
        assert not excluded(source.rstrip("/")), f"the Dockerfile copies {source}, which .dockerignore excludes"
    dockerfile = (repo_root / "Dockerfile").read_text()
    assert "bubblewrap" in dockerfile, "the sandbox's jail needs bubblewrap in the image"
    # every package from PyPI: no other index, and torch pinned to the version scripts/setup.sh installs
    assert "--index-url" not in dockerfile and "--extra-index-url" not in dockerfile
    setup_torch = re.search(r"torch==[\d.]+", (repo_root / "scripts" / "setup.sh").read_text()).group(0)
    assert f"pip install {setup_torch}" in dockerfile
