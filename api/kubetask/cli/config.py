"""Where the CLI finds the gateway, the token and the namespace.

Each setting is taken from the first of: a command-line flag, an environment variable, the config
file, a default. The config file is YAML at $KUBETASK_CONFIG, else
$XDG_CONFIG_HOME/kubetask/config.yaml (~/.config/kubetask/config.yaml):

    gateway: https://kubetask.example.com
    namespace: team-a
    token: eyJhbGciOi...          # or tokenFile: /var/run/secrets/tokens/kubetask
    caFile: /etc/ssl/certs/internal-ca.pem

When no namespace is set anywhere, a Kubernetes ServiceAccount token names its own namespace
(claim `kubernetes.io.namespace`); that is used before falling back to `default`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
DEFAULT_NAMESPACE = "default"

ENV_GATEWAY = "KUBETASK_GATEWAY_URL"
ENV_TOKEN = "KUBETASK_TOKEN"
ENV_TOKEN_FILE = "KUBETASK_TOKEN_FILE"
ENV_NAMESPACE = "KUBETASK_NAMESPACE"
ENV_CA_FILE = "KUBETASK_CA_FILE"
ENV_CONFIG = "KUBETASK_CONFIG"

# config-file key -> setting (both spellings are accepted)
_FILE_KEYS = {"gateway": "gateway", "gatewayUrl": "gateway", "gateway_url": "gateway", "url": "gateway",
              "token": "token", "tokenFile": "token_file", "token_file": "token_file",
              "namespace": "namespace", "caFile": "ca_file", "ca_file": "ca_file"}


class ConfigError(Exception):
    """The configuration cannot be used (unreadable file, bad YAML, unknown key, missing token file)."""


@dataclass
class Settings:
    gateway: str = DEFAULT_GATEWAY
    token: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    ca_file: str | None = None
    config_path: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)  # setting -> where it came from

    @property
    def api_base(self) -> str:
        return self.gateway.rstrip("/")


def config_path(env: Mapping[str, str]) -> Path:
    explicit = env.get(ENV_CONFIG)
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path(env.get("HOME") or Path.home()) / ".config"
    return base / "kubetask" / "config.yaml"


def read_config_file(path: Path) -> dict[str, str]:
    """The settings in the config file ({} when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ConfigError(f"cannot read the config file {path}: {error.strerror or error}") from error
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"the config file {path} is not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"the config file {path} must be a mapping (gateway:, token:, namespace:, ...)")
    settings: dict[str, str] = {}
    for key, value in data.items():
        name = _FILE_KEYS.get(str(key))
        if name is None:
            known = ", ".join(sorted({"gateway", "token", "tokenFile", "namespace", "caFile"}))
            raise ConfigError(f"the config file {path} has an unknown key {key!r} (known: {known})")
        if value is None:
            continue
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"the config file {path}: {key} must be a string")
        settings[name] = str(value)
    return settings


def _read_token_file(path: str, source: str) -> str:
    try:
        token = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"cannot read the token file {path} ({source}): {error.strerror or error}") from error
    if not token:
        raise ConfigError(f"the token file {path} ({source}) is empty")
    return token


def token_namespace(token: str | None) -> str | None:
    """The namespace a Kubernetes ServiceAccount token (a JWT) belongs to, if it says."""
    if not token or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict):
        return None
    k8s = claims.get("kubernetes.io")
    namespace = k8s.get("namespace") if isinstance(k8s, dict) else None
    return namespace if isinstance(namespace, str) and namespace else None


def resolve(*, gateway: str | None = None, token: str | None = None, token_file: str | None = None,
            namespace: str | None = None, ca_file: str | None = None,
            env: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags (the arguments), then the environment, then the config file, then defaults."""
    env = os.environ if env is None else env
    path = config_path(env)
    from_file = read_config_file(path)
    settings = Settings(config_path=path)
    file_label = f"config file {path}"

    def pick(name: str, flag: str | None, env_name: str) -> tuple[str | None, str]:
        if flag:
            return flag, "flag"
        if env.get(env_name):
            return env[env_name], f"env {env_name}"
        if from_file.get(name):
            return from_file[name], file_label
        return None, "default"

    value, source = pick("gateway", gateway, ENV_GATEWAY)
    if value:
        settings.gateway = value
    settings.sources["gateway"] = source
    if not settings.gateway.startswith(("http://", "https://")):
        raise ConfigError(f"the gateway URL must start with http:// or https:// (got {settings.gateway!r} from {source})")

    # The token: --token / --token-file, then KUBETASK_TOKEN / KUBETASK_TOKEN_FILE, then the file's token / tokenFile.
    if token:
        settings.token, settings.sources["token"] = token, "flag"
    elif token_file:
        settings.token, settings.sources["token"] = _read_token_file(token_file, "flag --token-file"), "flag --token-file"
    elif env.get(ENV_TOKEN):
        settings.token, settings.sources["token"] = env[ENV_TOKEN].strip(), f"env {ENV_TOKEN}"
    elif env.get(ENV_TOKEN_FILE):
        settings.token = _read_token_file(env[ENV_TOKEN_FILE], f"env {ENV_TOKEN_FILE}")
        settings.sources["token"] = f"env {ENV_TOKEN_FILE}"
    elif from_file.get("token"):
        settings.token, settings.sources["token"] = from_file["token"].strip(), file_label
    elif from_file.get("token_file"):
        settings.token = _read_token_file(from_file["token_file"], file_label)
        settings.sources["token"] = f"{file_label} (tokenFile)"
    else:
        settings.sources["token"] = "none"

    value, source = pick("namespace", namespace, ENV_NAMESPACE)
    if value:
        settings.namespace = value
    elif (from_token := token_namespace(settings.token)) is not None:
        settings.namespace, source = from_token, "the token's ServiceAccount namespace"
    settings.sources["namespace"] = source

    value, source = pick("ca_file", ca_file, ENV_CA_FILE)
    settings.ca_file = value
    settings.sources["ca_file"] = source
    return settings
