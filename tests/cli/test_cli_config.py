"""Where the CLI's settings come from: flags, then environment, then the config file, then defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_fakes import jwt
from kubetask.cli.config import DEFAULT_GATEWAY, ConfigError, config_path, resolve, token_namespace


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_without_anything(tmp_path: Path) -> None:
    settings = resolve(env={"KUBETASK_CONFIG": str(tmp_path / "missing.yaml")})
    assert (settings.gateway, settings.namespace, settings.token, settings.ca_file) == (DEFAULT_GATEWAY, "default", None, None)
    assert settings.sources == {"gateway": "default", "token": "none", "namespace": "default", "ca_file": "default"}


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    config = write(tmp_path / "config.yaml", "gateway: http://file:1\ntoken: file-token\nnamespace: file-ns\ncaFile: /file/ca.pem\n")
    env = {"KUBETASK_CONFIG": str(config)}
    only_file = resolve(env=env)
    assert (only_file.gateway, only_file.token, only_file.namespace, only_file.ca_file) == ("http://file:1", "file-token", "file-ns", "/file/ca.pem")
    assert only_file.sources["gateway"] == f"config file {config}"

    env |= {"KUBETASK_GATEWAY_URL": "http://env:2", "KUBETASK_TOKEN": "env-token", "KUBETASK_NAMESPACE": "env-ns"}
    from_env = resolve(env=env)
    assert (from_env.gateway, from_env.token, from_env.namespace, from_env.ca_file) == ("http://env:2", "env-token", "env-ns", "/file/ca.pem")
    assert from_env.sources["token"] == "env KUBETASK_TOKEN"

    flags = resolve(gateway="https://flag:3", token="flag-token", namespace="flag-ns", ca_file="/flag/ca.pem", env=env)
    assert (flags.gateway, flags.token, flags.namespace, flags.ca_file) == ("https://flag:3", "flag-token", "flag-ns", "/flag/ca.pem")
    assert set(flags.sources.values()) == {"flag"}


def test_token_files_in_each_place(tmp_path: Path) -> None:
    token_file = write(tmp_path / "token", "  from-a-file\n")
    config = write(tmp_path / "config.yaml", f"tokenFile: {token_file}\n")
    assert resolve(env={"KUBETASK_CONFIG": str(config)}).token == "from-a-file"
    assert resolve(env={"KUBETASK_CONFIG": "/none", "KUBETASK_TOKEN_FILE": str(token_file)}).token == "from-a-file"
    assert resolve(token_file=str(token_file), env={"KUBETASK_CONFIG": "/none", "KUBETASK_TOKEN": "env"}).token == "from-a-file"
    assert resolve(token="flag", token_file=str(token_file), env={"KUBETASK_CONFIG": "/none"}).token == "flag"
    with pytest.raises(ConfigError, match="cannot read the token file"):
        resolve(token_file=str(tmp_path / "nope"), env={"KUBETASK_CONFIG": "/none"})
    with pytest.raises(ConfigError, match="is empty"):
        resolve(token_file=str(write(tmp_path / "empty", "\n")), env={"KUBETASK_CONFIG": "/none"})


def test_the_namespace_of_a_service_account_token_is_the_fallback(tmp_path: Path) -> None:
    token = jwt({"sub": "system:serviceaccount:team-b:ci", "kubernetes.io": {"namespace": "team-b", "serviceaccount": {"name": "ci"}}})
    assert token_namespace(token) == "team-b"
    settings = resolve(token=token, env={"KUBETASK_CONFIG": "/none"})
    assert settings.namespace == "team-b" and "ServiceAccount" in settings.sources["namespace"]
    assert resolve(token=token, namespace="explicit", env={"KUBETASK_CONFIG": "/none"}).namespace == "explicit"
    for opaque in ("not-a-jwt", "a.b.c", jwt({"sub": "oidc-user"}), jwt({"kubernetes.io": "x"})):
        assert token_namespace(opaque) is None


def test_config_path_follows_xdg_and_kubetask_config() -> None:
    assert config_path({"HOME": "/home/u"}) == Path("/home/u/.config/kubetask/config.yaml")
    assert config_path({"HOME": "/home/u", "XDG_CONFIG_HOME": "/xdg"}) == Path("/xdg/kubetask/config.yaml")
    assert config_path({"HOME": "/home/u", "KUBETASK_CONFIG": "/etc/kt.yaml"}) == Path("/etc/kt.yaml")


@pytest.mark.parametrize(("text", "problem"), [
    ("gateway: [", "not valid YAML"),
    ("- a\n- b\n", "must be a mapping"),
    ("gateway: http://x\ntokn: abc\n", "unknown key 'tokn'"),
    ("namespace: {a: 1}\n", "must be a string"),
])
def test_a_broken_config_file_is_reported(tmp_path: Path, text: str, problem: str) -> None:
    config = write(tmp_path / "config.yaml", text)
    with pytest.raises(ConfigError, match=problem):
        resolve(env={"KUBETASK_CONFIG": str(config)})


def test_gateway_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must start with http"):
        resolve(gateway="gw.example.com", env={"KUBETASK_CONFIG": "/none"})
    assert resolve(env={"KUBETASK_CONFIG": str(write(tmp_path / "c.yaml", "gateway: https://gw/\n"))}).api_base == "https://gw"
