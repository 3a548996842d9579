"""deploy/: every overlay renders with `kubectl kustomize` and validates (core objects with
kubernetes-validate, Dask objects against the CRD schemas shipped in dask-kubernetes); the
CronJob's command and the ConfigMap's config pass `tsne-dist run --dry-run`, and the same config
runs end to end on a real local scheduler with its inputs and outputs on a loopback S3 server
(in test_object_storage.py, beside that module's server and cluster)."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import yaml

from tsne_dist.kubernetes import KubernetesSettings, cluster_spec, gpu_worker_group

from conftest import run_cli

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
OVERLAYS = ("cpu", "gpu")


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is not installed (apt-get install kubernetes-client)")
        pytest.skip("kubectl is not installed (apt-get install kubernetes-client)")
    return found


def render(overlay: str) -> list[dict]:
    """The objects `kubectl kustomize deploy/overlays/OVERLAY` prints."""
    done = subprocess.run([_kubectl(), "kustomize", str(DEPLOY / "overlays" / overlay)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return [item for item in yaml.safe_load_all(done.stdout) if item]


def _crd_schema(kind: str) -> dict:
    folder = resources.files("dask_kubernetes") / "operator" / "deployment" / "helm" / "dask-kubernetes-operator"
    crd = yaml.safe_load((folder / "crds" / f"{kind.lower()}.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def validate_dask_object(item: dict) -> None:
    """Validate a DaskCluster / DaskWorkerGroup / DaskJob against the operator's CRD schema."""
    import jsonschema

    jsonschema.validate(item, _crd_schema(item["kind"]))


def job_config(objects: list[dict]) -> tuple[dict, list[str]]:
    config_map = next(item for item in objects if item["kind"] == "ConfigMap")
    cron = next(item for item in objects if item["kind"] == "CronJob")
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return yaml.safe_load(config_map["data"]["run.yaml"]), container["command"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_and_validates(overlay):
    import kubernetes_validate

    objects = render(overlay)
    kinds = sorted(item["kind"] for item in objects)
    assert kinds == ["ConfigMap", "CronJob", "Role", "RoleBinding", "ServiceAccount"]
    version = kubernetes_validate.utils.latest_version()
    for item in objects:
        kubernetes_validate.validate(item, version, strict=True)
    cron = next(item for item in objects if item["kind"] == "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    config_name = next(item for item in objects if item["kind"] == "ConfigMap")["metadata"]["name"]
    assert pod["volumes"][0]["configMap"]["name"] == config_name  # the generated name, with its hash
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "tsne-dist-s3"}}]
    assert pod["serviceAccountName"] == "tsne-dist"
    role = next(item for item in objects if item["kind"] == "Role")
    granted = {(group, resource) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"]}
    assert ("kubernetes.dask.org", "daskclusters") in granted and ("", "pods") in granted

    config, command = job_config(objects)
    settings = KubernetesSettings.from_mapping(config["kubernetes"])
    assert settings.image.split(":")[0] == pod["containers"][0]["image"].split(":")[0]  # job and Dask pods alike
    spec = cluster_spec(settings)
    validate_dask_object(spec)
    assert spec["spec"]["worker"]["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "tsne-dist-s3"}}]
    if overlay == "gpu":
        group = gpu_worker_group(settings, spec["metadata"]["name"])
        validate_dask_object(group)
        assert group["spec"]["worker"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert command[:2] == ["tsne-dist", "run"] and command[-2:] == ["--cluster", "kubernetes"]


def test_the_daskjob_example_validates_against_the_crd():
    item = yaml.safe_load((DEPLOY / "daskjob" / "daskjob.yaml").read_text())
    validate_dask_object(item)
    with pytest.raises(Exception, match="replicas"):  # the schema really is checked
        broken = yaml.safe_load((DEPLOY / "daskjob" / "daskjob.yaml").read_text())
        broken["spec"]["cluster"]["spec"]["worker"]["replicas"] = "four"
        validate_dask_object(broken)


def test_kubernetes_section_errors_are_one_line(tmp_path, capsys, catalog_files):
    base = ["run", "--vectors", catalog_files["vectors"], "--out", str(tmp_path / "o"), "--cluster", "kubernetes"]
    code, _, err = run_cli(capsys, *base)
    assert code == 2 and "needs a kubernetes section" in err and len(err.strip().splitlines()) == 1
    config = tmp_path / "run.yaml"
    config.write_text("kubernetes:\n  n_workers: 3\n")
    code, _, err = run_cli(capsys, "run", str(config), *base[1:])
    assert code == 2 and "names no image" in err
    config.write_text("kubernetes:\n  image: x\n  n_worker: 3\n")
    code, _, err = run_cli(capsys, "run", str(config), *base[1:])
    assert code == 2 and "unknown key 'n_worker'" in err
    assert not (tmp_path / "o").exists()


def test_a_cluster_kind_without_its_extra_is_a_one_line_error(tmp_path, catalog_files):
    """Without dask-kubernetes (hidden from the import system in a fresh process) or dask-cuda."""
    import sys

    config = tmp_path / "run.yaml"
    config.write_text("kubernetes:\n  image: ghcr.io/example/tsne-dist:0.1.0\n")
    for cluster, hide, extra in (("kubernetes", "dask_kubernetes", "k8s"), ("local-cuda", "dask_cuda", "gpu")):
        argv = ["run", str(config), "--vectors", catalog_files["vectors"], "--out", str(tmp_path / "o"),
                "--cluster", cluster]
        probe = f"import sys; sys.modules[{hide!r}] = None; from tsne_dist.cli import main; sys.exit(main({argv!r}))"
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and f'pip install "tsne-dist[{extra}]"' in done.stderr
    assert not (tmp_path / "o").exists()


def test_the_dask_pods_commands_exist_in_this_install():
    """The scheduler and worker commands our DaskCluster and the DaskJob example give exist (distributed
    2026.6 removed the dask-scheduler and dask-worker scripts): `dask scheduler --help` and
    `dask worker --help` run here, as they would in an image of this package."""
    import sys

    settings = KubernetesSettings.from_mapping({"image": "x"})
    spec = cluster_spec(settings)
    job = yaml.safe_load((DEPLOY / "daskjob" / "daskjob.yaml").read_text())["spec"]["cluster"]
    commands = {tuple(role["spec"]["containers"][0]["args"][:2])
                for role in (spec["spec"]["scheduler"], spec["spec"]["worker"], job["spec"]["scheduler"],
                             job["spec"]["worker"])}
    assert commands == {("dask", "scheduler"), ("dask", "worker")}
    dask = Path(sys.executable).with_name("dask")
    for _, command in commands:
        done = subprocess.run([str(dask), command, "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and "Usage" in done.stdout, done.stderr
