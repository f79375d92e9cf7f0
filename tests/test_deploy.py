"""The Kubernetes manifests under deploy/ (kustomize base, overlays, components).

No cluster here. Every file is loaded with PyYAML and held to what the proxy needs
(probes on the admin paths, security context, graceful shutdown, label selectors, the
cloud identity wiring); each overlay's configuration is validated by the real config
loader and backend plugins; and where ``kustomize`` or ``kubectl`` is installed, every
overlay is rendered and the rendered objects are checked the same way.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from s3proxy import config as config_mod
from s3proxy.plugins import make_plugin_manager
from tests.containerfile import ROOT
from tests.containerfile import parse as parse_containerfile

DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "base"
OVERLAYS = {name: DEPLOY / "overlays" / name for name in ("aws", "azure", "gcp")}
COMPONENT = DEPLOY / "components" / "servicemonitor"
CONFIG_MOUNT = "/etc/s3proxy/config"
CREDENTIALS_MOUNT = "/etc/s3proxy/credentials"

Doc = dict[str, Any]

# What each cloud's workload identity needs, as (kind, where, key, value pattern).
IDENTITY = {
    "aws": [
        (
            "ServiceAccount",
            "annotations",
            "eks.amazonaws.com/role-arn",
            r"arn:aws:iam::\d{12}:role/.+",
        )
    ],
    "azure": [
        (
            "ServiceAccount",
            "annotations",
            "azure.workload.identity/client-id",
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        ),
        ("Deployment", "pod labels", "azure.workload.identity/use", r"true"),
    ],
    "gcp": [
        (
            "ServiceAccount",
            "annotations",
            "iam.gke.io/gcp-service-account",
            r"[a-z][-a-z0-9]*@[-a-z0-9]+\.iam\.gserviceaccount\.com",
        )
    ],
}


def load(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def kustomization(directory: Path) -> Doc:
    (doc,) = load(directory / "kustomization.yaml")
    return doc


def base_docs() -> list[Doc]:
    return [d for r in kustomization(BASE)["resources"] for d in load(BASE / r)]


def one(docs: list[Doc], kind: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(deployment: Doc) -> Doc:
    (c,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "s3proxy"
    ]
    return c


def env_of(deployment: Doc) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(deployment).get("env", []) if "value" in e}


def base_toml() -> Doc:
    (generator,) = kustomization(BASE)["configMapGenerator"]
    (name,) = generator["files"]
    return tomllib.loads((BASE / name).read_text(encoding="utf-8"))


# --- checks shared by the raw files and the rendered overlays ---------------------------


def check_workload(docs: list[Doc], config_maps: set[str]) -> None:
    """The Deployment, Service, PDB and ServiceAccount as the proxy needs them."""
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= labels.items(), "Deployment selector must match its pods"
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    spread = pod.get("topologySpreadConstraints", [])
    keys = {c["topologyKey"] for c in spread}
    assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys
    for c in spread:
        assert c["labelSelector"]["matchLabels"].items() <= labels.items()

    c = container(deployment)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    image = parse_containerfile()
    expose = image.final.last("EXPOSE")
    assert expose is not None
    assert ports["http"] == int(expose.args.split("/")[0])
    cmd = image.final.last("CMD")
    assert cmd is not None
    assert c.get("args", cmd.exec_form()) == cmd.exec_form()
    assert "command" not in c, "keep the image's ENTRYPOINT"

    for probe, path in (
        ("startupProbe", "/_s3proxy/health"),
        ("livenessProbe", "/_s3proxy/health"),
        ("readinessProbe", "/_s3proxy/ready"),
    ):
        get = c[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] in ("http", ports["http"]), probe
    assert c["readinessProbe"].get("timeoutSeconds", 1) > 5, "the backend probe may take 5 s"

    # Security: the restricted Pod Security Standard, and the image's own UID.
    psc, csc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True
    user = image.final.last("USER")
    assert user is not None
    assert str(psc["runAsUser"]) == user.args.split(":")[0]
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in csc["capabilities"]
    assert pod.get("hostNetwork") is not True

    requests, limits = c["resources"]["requests"], c["resources"]["limits"]
    assert {"cpu", "memory"} <= requests.keys() and "memory" in limits

    # Graceful shutdown: the kubelet must not kill before drain + grace are over.
    server = config_mod.convert(base_toml().get("server", {}), config_mod.ServerConfig, "server")
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > 30 and grace > server.drain_seconds + server.shutdown_grace

    # Volumes: writable /tmp, the config file and the credentials Secret.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    config_volume = volumes[mounts[CONFIG_MOUNT]["name"]]
    assert config_volume["configMap"]["name"] in config_maps
    secret_mount = mounts[CREDENTIALS_MOUNT]
    assert secret_mount.get("readOnly") is True
    assert "subPath" not in secret_mount, "subPath mounts never see Secret updates"
    assert volumes[secret_mount["name"]]["secret"]["secretName"] == "s3proxy-credentials"
    env = env_of(deployment)
    assert env["S3PROXY_AUTH__CREDENTIALS_FILE"].startswith(CREDENTIALS_MOUNT + "/")
    assert env["S3PROXY_CONFIG"] == f"{CONFIG_MOUNT}/s3proxy.toml"

    # ServiceAccount: the one the pods run as, no Kubernetes API token.
    account = one(docs, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False

    service = one(docs, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert service_ports["http"]["port"] == 80
    for p in service_ports.values():
        assert p["targetPort"] in ("http", ports["http"])
    assert "metrics" in service_ports

    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert pdb["spec"]["minAvailable"] == 1 < spec["replicas"]


def check_identity(cloud: str, docs: list[Doc]) -> None:
    for kind, where, key, pattern in IDENTITY[cloud]:
        obj = one(docs, kind)
        if where == "pod labels":
            values = obj["spec"]["template"]["metadata"]["labels"]
        else:
            values = obj["metadata"][where]
        value = values.get(key)
        assert isinstance(value, str), f"{cloud}: {kind} {key} must be a string, got {value!r}"
        assert re.fullmatch(pattern, value), f"{cloud}: {kind} {key}={value!r}"


def check_startup_config(env: dict[str, str], tmp_path: Path) -> config_mod.Config:
    """What ``s3proxy serve`` checks at start, with the pod's file and environment."""
    credentials = tmp_path / "credentials.toml"
    credentials.write_text(
        '[[credentials]]\naccess_key_id = "team"\nsecret_access_key = "secret"\n',
        encoding="utf-8",
    )
    config_file = tmp_path / "s3proxy.toml"
    config_file.write_text((BASE / "s3proxy.toml").read_text(encoding="utf-8"), encoding="utf-8")
    environ = {
        **env,
        "S3PROXY_CONFIG": str(config_file),
        "S3PROXY_AUTH__CREDENTIALS_FILE": str(credentials),
        "S3PROXY_SERVER__HOST": "0.0.0.0",  # the image's --host
    }
    cfg = config_mod.load(environ=environ)
    plugins = make_plugin_manager(cfg.disable_plugins)
    plugins.validate(cfg)
    plugins.manager.hook.make_authenticator(config=cfg)
    plugins.manager.hook.make_authorizer(config=cfg)
    return cfg


# --- the files as written ---------------------------------------------------------------


def all_kustomizations() -> list[Path]:
    return [BASE, COMPONENT, *OVERLAYS.values()]


@pytest.mark.parametrize("directory", all_kustomizations(), ids=lambda p: p.name)
def test_kustomization_references_exist(directory: Path) -> None:
    doc = kustomization(directory)
    refs = [*doc.get("resources", []), *doc.get("components", [])]
    refs += [p["path"] for p in doc.get("patches", []) if "path" in p]
    refs += [f for g in doc.get("configMapGenerator", []) for f in g.get("files", [])]
    assert refs, f"{directory}: kustomization lists nothing"
    for ref in refs:
        target = (directory / ref).resolve()
        assert target.exists(), f"{directory}/kustomization.yaml: {ref} does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").exists()


def test_every_yaml_file_parses_and_is_used() -> None:
    used: set[Path] = set()
    for directory in all_kustomizations():
        doc = kustomization(directory)
        refs = [*doc.get("resources", []), *(p["path"] for p in doc.get("patches", []))]
        used |= {(directory / r).resolve() for r in [*refs, "kustomization.yaml"]}
    for path in DEPLOY.rglob("*.yaml"):
        docs = load(path)
        assert docs, f"{path} is empty"
        for d in docs:
            assert {"apiVersion", "kind"} <= d.keys(), path
        assert path.resolve() in used, f"{path.relative_to(ROOT)} is used by no kustomization"


@pytest.mark.parametrize("cloud", sorted(OVERLAYS))
def test_overlay_namespace_is_the_one_identity_bindings_name(cloud: str) -> None:
    # IRSA trust policies, Azure federated credentials and GKE IAM bindings name
    # system:serviceaccount:<namespace>:s3proxy; docs/deploy.md uses "s3proxy".
    (namespace,) = [d for d in base_docs() if d["kind"] == "Namespace"]
    assert kustomization(BASE)["namespace"] == namespace["metadata"]["name"] == "s3proxy"
    assert kustomization(OVERLAYS[cloud])["namespace"] == "s3proxy"
    assert one(base_docs(), "ServiceAccount")["metadata"]["name"] == "s3proxy"


def test_base_workload() -> None:
    (generator,) = kustomization(BASE)["configMapGenerator"]
    check_workload(base_docs(), {generator["name"]})


def test_base_image_name_is_the_one_kustomize_replaces() -> None:
    deployment = one(base_docs(), "Deployment")
    names = {i["name"] for i in kustomization(BASE)["images"]}
    assert container(deployment)["image"] in names


def test_base_config_file_is_a_valid_config() -> None:
    cfg = config_mod.convert(base_toml(), config_mod.Config, "")
    assert cfg.logging.format == "json"
    assert cfg.auth.anonymous == "none"
    assert cfg.server.drain_seconds > 0, "drain so that endpoints update before close"


@pytest.mark.parametrize("cloud", sorted(OVERLAYS))
def test_overlay_patches_wire_the_cloud_identity(cloud: str) -> None:
    overlay = OVERLAYS[cloud]
    doc = kustomization(overlay)
    assert [str((overlay / r).resolve()) for r in doc["resources"]] == [str(BASE.resolve())]
    patches = [d for p in doc["patches"] for d in load(overlay / p["path"])]
    base = base_docs()
    for patch in patches:
        # Each patch targets an object of the base, by kind and name.
        target = one(base, patch["kind"])
        assert patch["metadata"]["name"] == target["metadata"]["name"], patch["kind"]
    check_identity(cloud, patches)


@pytest.mark.parametrize("cloud", sorted(OVERLAYS))
def test_overlay_configuration_is_accepted_by_the_backend_plugin(
    cloud: str, tmp_path: Path
) -> None:
    # Strategic merge of env lists is by name: the overlay's entries win.
    patches = [
        d
        for p in kustomization(OVERLAYS[cloud])["patches"]
        for d in load(OVERLAYS[cloud] / p["path"])
    ]
    env = {**env_of(one(base_docs(), "Deployment")), **env_of(one(patches, "Deployment"))}
    assert env["S3PROXY_BACKEND"] == cloud
    cfg = check_startup_config(env, tmp_path)
    assert cfg.backend == cloud
    assert cfg.backends[cloud], f"{cloud}: the overlay configures the backend"


def test_servicemonitor_component_scrapes_the_metrics_port() -> None:
    doc = kustomization(COMPONENT)
    assert doc["kind"] == "Component"
    monitor = one([d for r in doc["resources"] for d in load(COMPONENT / r)], "ServiceMonitor")
    service = one(base_docs(), "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    ports = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports
        assert endpoint["path"] == "/_s3proxy/metrics"


# --- rendered with kustomize ------------------------------------------------------------


def _kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@functools.cache
def render(directory: Path) -> list[Doc]:
    command = _kustomize()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed")
    result = subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


def _check_rendered(docs: list[Doc]) -> None:
    config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    assert all(re.fullmatch(r"s3proxy-config-[a-z0-9]{10}", n) for n in config_maps), (
        "the generated ConfigMap name carries the content hash (config changes roll pods)"
    )
    check_workload(docs, config_maps)
    image = container(one(docs, "Deployment"))["image"]
    assert image != "s3proxy" and ":" in image, "kustomize replaced the image with a tagged one"
    namespace = one(docs, "Namespace")["metadata"]["name"]
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == namespace, d["kind"]


def test_rendered_base() -> None:
    _check_rendered(render(BASE))


@pytest.mark.parametrize("cloud", sorted(OVERLAYS))
def test_rendered_overlay(cloud: str, tmp_path: Path) -> None:
    docs = render(OVERLAYS[cloud])
    _check_rendered(docs)
    check_identity(cloud, docs)
    env = env_of(one(docs, "Deployment"))
    # The patch added to the base's environment rather than replacing it.
    assert {"S3PROXY_CONFIG", "S3PROXY_AUTH__CREDENTIALS_FILE", "S3PROXY_BACKEND"} <= env.keys()
    check_startup_config(env, tmp_path)


@pytest.mark.parametrize("cloud", sorted(OVERLAYS))
def test_rendered_overlay_with_servicemonitor(cloud: str, tmp_path: Path) -> None:
    # As docs/deploy.md says to enable it: the component in the overlay's kustomization.
    overlay = OVERLAYS[cloud]
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": kustomization(overlay)["namespace"],
                # kustomize refuses absolute paths to other kustomizations
                "resources": [os.path.relpath(overlay, tmp_path)],
                "components": [os.path.relpath(COMPONENT, tmp_path)],
            }
        ),
        encoding="utf-8",
    )
    docs = render(tmp_path)
    monitor, service = one(docs, "ServiceMonitor"), one(docs, "Service")
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
