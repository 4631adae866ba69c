from __future__ import annotations

from pathlib import Path

import pytest

from orch.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_and_no_env_gives_defaults_with_data_dir_in_cwd() -> None:
    config = load_config(env={})
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8080
    assert config.database.data_dir == Path("data")
    assert config.database.db_path == Path("data/orch.db")
    assert config.database.synchronous == "FULL"
    assert config.security.dev_mode is False
    assert config.source is None


def test_file_values_are_read_and_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server:
  host: 0.0.0.0
  port: 9090
  cors_origins: [https://app.example.com, "http://localhost:3000"]
  shutdown_grace: 2.5
database:
  data_dir: /var/lib/orch
  path: main.db
  synchronous: normal
monitoring:
  enabled: false
""",
    )
    config = load_config(path, env={})
    assert config.server.host == "0.0.0.0"
    assert config.server.port == 9090
    assert config.server.cors_origins == ("https://app.example.com", "http://localhost:3000")
    assert config.server.shutdown_grace == 2.5
    assert config.database.db_path == Path("/var/lib/orch/main.db")
    assert config.database.synchronous == "NORMAL"
    assert config.monitoring.enabled is False
    assert config.source == path


def test_variables_are_substituted_with_defaults_and_escapes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server:
  port: ${PORT}
  host: ${HOST:-127.0.0.2}
security:
  jwt_secret: "${SECRET}"
  jwt_issuer: "$${NOT_A_VAR}"
""",
    )
    config = load_config(path, env={"PORT": "7000", "SECRET": "s" * 40})
    assert config.server.port == 7000
    assert config.server.host == "127.0.0.2"
    assert config.security.jwt_secret == "s" * 40
    assert config.security.jwt_issuer == "${NOT_A_VAR}"


def test_missing_variable_names_the_key_and_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "security:\n  jwt_secret: ${ORCH_TEST_UNSET}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value).startswith(
        "security.jwt_secret: environment variable ORCH_TEST_UNSET is not set"
    )


def test_substituted_value_cannot_inject_yaml_structure(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  host: ${EVIL}\n")
    config = load_config(path, env={"EVIL": "x\nport: 1"})
    assert config.server.host == "x\nport: 1"
    assert config.server.port == 8080


def test_bad_port_error_names_the_key_and_the_value() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env={"ORCH_PORT": "abc"})
    assert str(caught.value) == "server.port: must be 0..65535, got 'abc'"


def test_out_of_range_number_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^server\.port: must be 0\.\.65535, got 70000$"):
        load_config(env={}, overrides={"server.port": 70000})


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server:\n  prot: 1\n  max_body_bytes: -5\ndatabse: {}\ndatabase:\n  synchronous: sometimes\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    problems = caught.value.problems
    assert any(p.startswith("server.prot: unknown key") for p in problems)
    assert any(p.startswith("server.max_body_bytes: must be 1..") for p in problems)
    assert any(p.startswith("databse: unknown section") for p in problems)
    assert any(
        p.startswith("database.synchronous: must be one of OFF, NORMAL, FULL, EXTRA") for p in problems
    )
    assert len(problems) == 4


def test_env_shortcuts_override_the_file_and_overrides_win_over_env(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 9000\n  host: 10.0.0.1\n")
    env = {
        "ORCH_PORT": "9001",
        "ORCH_DATA_DIR": "/srv/orch",
        "ORCH_DEV_MODE": "yes",
        "ORCH_JWT_SECRET": "j" * 32,
        "ORCH_WEBHOOK_SECRET": "w" * 32,
        "ORCH_ADMIN_USER": "root",
        "ORCH_ADMIN_PASSWORD": "correct horse",
        "ORCH_HOST": "",  # empty values are ignored
    }
    config = load_config(path, env=env, overrides={"server.port": 9002, "server.host": None})
    assert config.server.port == 9002
    assert config.server.host == "10.0.0.1"
    assert config.database.data_dir == Path("/srv/orch")
    assert config.security.dev_mode is True
    assert config.security.jwt_secret == "j" * 32
    assert config.security.webhook_secret == "w" * 32
    assert (config.security.admin_user, config.security.admin_password) == ("root", "correct horse")


def test_generic_env_override_reaches_any_key() -> None:
    config = load_config(env={"ORCH_SERVER__MAX_BODY_BYTES": "2048", "ORCH_MONITORING__ENABLED": "off"})
    assert config.server.max_body_bytes == 2048
    assert config.monitoring.enabled is False


def test_config_path_comes_from_orch_config_env(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 1234\n")
    assert load_config(env={"ORCH_CONFIG": str(path)}).server.port == 1234


def test_secrets_are_never_echoed_in_errors_or_repr() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env={}, overrides={"security.jwt_secret": ["hunter2-but-longer"]})
    assert "hunter2" not in str(caught.value)
    assert str(caught.value).startswith("security.jwt_secret: must be a string")
    config = load_config(env={"ORCH_JWT_SECRET": "topsecret-value-of-32-bytes-1234"})
    assert "topsecret" not in repr(config)
    assert config.secret_values() == ["topsecret-value-of-32-bytes-1234"]


def test_strict_scalars_refuse_near_misses() -> None:
    with pytest.raises(ConfigError, match=r"server\.access_log: must be true or false, got 'maybe'"):
        load_config(env={"ORCH_SERVER__ACCESS_LOG": "maybe"})
    with pytest.raises(ConfigError, match=r"server\.shutdown_grace: must be 0\.0\.\.3600\.0, got 'nan'"):
        load_config(env={"ORCH_SERVER__SHUTDOWN_GRACE": "nan"})
    with pytest.raises(ConfigError, match=r"server\.port: must be 0\.\.65535, got True"):
        load_config(env={}, overrides={"server.port": True})


def test_cors_origins_must_be_origins() -> None:
    config = load_config(env={"ORCH_SERVER__CORS_ORIGINS": "https://a.example, http://b.example:8080"})
    assert config.server.cors_origins == ("https://a.example", "http://b.example:8080")
    with pytest.raises(ConfigError, match=r"^server\.cors_origins: must contain"):
        load_config(env={"ORCH_SERVER__CORS_ORIGINS": "https://a.example/path"})


def test_admin_user_without_password_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^security\.admin_password: admin_user and admin_password"):
        load_config(env={"ORCH_ADMIN_USER": "root"})


def test_unreadable_or_malformed_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config file not found: "):
        load_config(tmp_path / "missing.yaml", env={})
    with pytest.raises(ConfigError, match=r"invalid YAML \(line 2, column"):
        load_config(write(tmp_path, "server:\n\tport: 1\n"), env={})
    with pytest.raises(ConfigError, match=r"must be a mapping of sections, got list"):
        load_config(write(tmp_path, "- 1\n- 2\n"), env={})
    with pytest.raises(ConfigError, match=r"^server: must be a mapping, got str"):
        load_config(write(tmp_path, "server: nope\n"), env={})


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "# nothing yet\n"), env={}).server.port == 8080


def test_listen_backlog_defaults_to_4096_and_reaches_hypercorn() -> None:
    from orch.server import hypercorn_config

    assert hypercorn_config(load_config(env={}).server).backlog == 4096
    tuned = load_config(env={"ORCH_SERVER__BACKLOG": "512"})
    assert hypercorn_config(tuned.server).backlog == 512
    with pytest.raises(ConfigError, match=r"server\.backlog"):
        load_config(env={"ORCH_SERVER__BACKLOG": "0"})


def test_response_date_header_is_current_and_formatted_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wsgiref.handlers import format_date_time

    import orch.server
    from orch.server import hypercorn_config

    config = hypercorn_config(load_config(env={}).server)
    clock = [1_700_000_000.2]
    monkeypatch.setattr(orch.server.time, "time", lambda: clock[0])
    first = config.response_headers("h11")
    first.append((b"x-caller", b"own copy"))
    assert config.response_headers("h11") == [(b"date", format_date_time(1_700_000_000).encode())]
    clock[0] = 1_700_000_001.0
    assert config.response_headers("h11") == [(b"date", format_date_time(1_700_000_001).encode())]
