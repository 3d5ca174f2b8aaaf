"""Settings: defaults < TOML file < environment < flags, every bad setting reported at once,
secrets never shown (`metadata config show`, error messages)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadata.cli import main
from metadata.config import (
    FLAG_SETTINGS,
    HostPort,
    RateLimit,
    Settings,
    env_name,
    load_settings,
    parse_host_port,
)
from metadata.errors import InvalidSettings

ADMIN_TOKEN = "admin-token-0123456789abcdef"
PROXY_SECRET = "proxy-secret-fedcba9876543210"
DB_PASSWORD = "db-password-5d41402abc4b2a76"


@pytest.fixture(autouse=True)
def no_settings_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main()` reads os.environ: a METADATA_* variable of the caller must not leak in."""
    for name in FLAG_SETTINGS:
        monkeypatch.delenv(env_name(name), raising=False)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "metadata.toml"
    path.write_text(text)
    return path


def problems_of(**kwargs: object) -> list[str]:
    with pytest.raises(InvalidSettings) as caught:
        load_settings(**kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def test_nothing_configured_gives_the_documented_defaults() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.database_url == "sqlite+aiosqlite:///metadata.db"
    assert settings.cache_url == "memory://"
    assert settings.cache_ttl == 300
    assert settings.listen == (HostPort("127.0.0.1", 8775),)
    assert settings.admin_listen == HostPort("127.0.0.1", 9775)
    assert settings.token_mode == "optional"
    assert settings.rate_limit == RateLimit(50.0, 200)
    assert settings.shutdown_grace == 10.0


def test_toml_overrides_defaults_environment_overrides_toml_flags_override_environment(
    tmp_path: Path,
) -> None:
    toml = write_toml(
        tmp_path, 'cache_ttl = 60\nlisten = "10.0.0.1:8000"\ntoken_mode = "required"\n'
    )
    environ = {"METADATA_LISTEN": "10.0.0.2:8001", "METADATA_CACHE_URL": "redis://r:6379/0"}
    flags = {"cache_url": "redis://flag:6379/1", "listen": None}

    settings = load_settings(toml, environ=environ, flags=flags)

    assert settings.token_mode == "required"  # TOML only
    assert settings.cache_ttl == 60  # TOML only
    assert settings.listen == (HostPort("10.0.0.2", 8001),)  # environment over TOML; flag unset
    assert settings.cache_url == "redis://flag:6379/1"  # flag over environment
    assert settings.rate_limit == RateLimit(50.0, 200)  # default


def test_environment_token_replaces_a_toml_token_table_whatever_the_key_order(
    tmp_path: Path,
) -> None:
    toml = write_toml(
        tmp_path,
        f'admin_token = "{"t" * 16}"\n[admin_tokens]\nops = "{"o" * 16}"\n',
    )
    settings = load_settings(toml, environ={"METADATA_ADMIN_TOKEN": ADMIN_TOKEN})
    assert settings.admin_tokens == {"admin": ADMIN_TOKEN}

    from_flag = load_settings(
        toml, environ={"METADATA_ADMIN_TOKEN": ADMIN_TOKEN}, flags={"admin_token": "f" * 16}
    )
    assert from_flag.admin_tokens == {"admin": "f" * 16}


def test_admin_tokens_may_be_named_and_a_base64_token_keeps_its_padding() -> None:
    named = load_settings(environ={"METADATA_ADMIN_TOKEN": f"ops={'a' * 16}, ci={'b' * 20}"})
    assert named.admin_tokens == {"ops": "a" * 16, "ci": "b" * 20}
    padded = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="
    bare = load_settings(environ={"METADATA_ADMIN_TOKEN": padded})
    assert bare.admin_tokens == {"admin": padded}


def test_every_setting_is_parsed_from_its_environment_variable() -> None:
    environ = {
        "METADATA_DATABASE_URL": "postgresql+asyncpg://u@db/metadata",
        "METADATA_CACHE_URL": "redis://cache:6379/0",
        "METADATA_CACHE_TTL": "30",
        "METADATA_CACHE_MAX_ENTRIES": "10",
        "METADATA_LISTEN": "169.254.169.254:80",
        "METADATA_ADMIN_LISTEN": "[::1]:9000",
        "METADATA_ADMIN_TOKEN": ADMIN_TOKEN,
        "METADATA_ADMIN_TOKEN_FILE": "/run/token",
        "METADATA_PROXY_SHARED_SECRET": PROXY_SECRET,
        "METADATA_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        "METADATA_TOKEN_MODE": "required",
        "METADATA_RATE_LIMIT": "off",
        "METADATA_TOKEN_KEYS": f"new={'n' * 16},old={'o' * 16}",
        "METADATA_TOKEN_REQUIRED_PATHS": "/{version}/user-data, /openstack/*/password",
        "METADATA_TOKEN_EXEMPT_PATHS": "/{version}/meta-data/instance-id",
        "METADATA_GUEST_MAX_CONCURRENT": "64",
        "METADATA_GUEST_BODY_TIMEOUT": "1.5",
        "METADATA_USER_DATA_MAX_BYTES": "1024",
        "METADATA_VENDOR_DATA": '{"cloud": "x"}',
        "METADATA_LOG_LEVEL": "debug",
        "METADATA_SHUTDOWN_GRACE": "2.5",
    }
    assert set(environ) <= {env_name(name) for name in FLAG_SETTINGS}
    settings = load_settings(environ=environ)
    assert settings == Settings(
        database_url="postgresql+asyncpg://u@db/metadata",
        cache_url="redis://cache:6379/0",
        cache_ttl=30,
        cache_max_entries=10,
        listen=(HostPort("169.254.169.254", 80),),
        admin_listen=HostPort("::1", 9000),
        admin_tokens={"admin": ADMIN_TOKEN},
        admin_token_file="/run/token",
        proxy_shared_secret=PROXY_SECRET,
        trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1")),
        token_mode="required",
        rate_limit=None,
        token_keys={"new": "n" * 16, "old": "o" * 16},
        token_required_paths=("/{version}/user-data", "/openstack/*/password"),
        token_exempt_paths=("/{version}/meta-data/instance-id",),
        guest_max_concurrent=64,
        guest_body_timeout=1.5,
        user_data_max_bytes=1024,
        vendor_data={"cloud": "x"},
        log_level="DEBUG",
        shutdown_grace=2.5,
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("METADATA_DATABASE_URL", "postgresql://db/x", "expected a URL starting sqlite+aiosqlite"),
        ("METADATA_CACHE_URL", "memcached://c", "expected a URL starting memory://"),
        ("METADATA_CACHE_TTL", "abc", "expected a positive integer, got 'abc'"),
        ("METADATA_CACHE_TTL", "0", "expected a positive integer, got '0'"),
        ("METADATA_CACHE_MAX_ENTRIES", "-5", "expected a positive integer, got '-5'"),
        ("METADATA_LISTEN", "8775", "expected host:port"),
        ("METADATA_LISTEN", "host:70000", "port from 1 to 65535"),
        ("METADATA_ADMIN_LISTEN", ":9775", "expected host:port"),
        ("METADATA_LISTEN", "10.0.0.1:80,", "entry number 2 is empty"),
        ("METADATA_LISTEN", "10.0.0.1:80,,[::1]:80", "entry number 2 is empty"),
        ("METADATA_LISTEN", "10.0.0.1:80,10.0.0.1:80", "10.0.0.1:80 is given twice"),
        ("METADATA_LISTEN", "[10.0.0.1]:80", "only an IPv6 address goes in brackets"),
        ("METADATA_LISTEN", "10.0.0.1:80,[fd00:ec2::254]", "expected host:port"),
        ("METADATA_LISTEN", "10.0.0.1:80;[::1]:80", "neither an IP address nor a host name"),
        ("METADATA_TOKEN_HOP_LIMIT", "0", "expected a positive integer"),
        ("METADATA_TOKEN_HOP_LIMIT", "65", "expected 1 to 64"),
        ("METADATA_TOKEN_HOP_LIMIT", "two", "expected a positive integer"),
        ("METADATA_ADMIN_TOKEN", "short", "token 'admin' is shorter than 16 characters"),
        ("METADATA_ADMIN_TOKEN", f"a={'x' * 16},a={'y' * 16}", "token 'a' is given twice"),
        ("METADATA_ADMIN_TOKEN_FILE", " ", "expected a file name"),
        ("METADATA_TRUSTED_PROXIES", "10.0.0.0/8,nope", "'nope' is not an IP address or CIDR"),
        ("METADATA_TOKEN_MODE", "Required", "expected 'optional' or 'required'"),
        ("METADATA_RATE_LIMIT", "50", "expected RATE/BURST"),
        ("METADATA_RATE_LIMIT", "0/10", "expected RATE/BURST"),
        ("METADATA_RATE_LIMIT", "nan/10", "expected RATE/BURST"),
        ("METADATA_USER_DATA_MAX_BYTES", "1.5", "expected a positive integer"),
        ("METADATA_VENDOR_DATA", "[1, 2]", "expected a JSON object, got list"),
        ("METADATA_VENDOR_DATA", "{bad", "expected a JSON object"),
        ("METADATA_LOG_LEVEL", "loud", "expected one of DEBUG, INFO"),
        ("METADATA_SHUTDOWN_GRACE", "soon", "expected a number of seconds"),
        ("METADATA_SHUTDOWN_GRACE", "-1", "non-negative"),
        ("METADATA_SHUTDOWN_GRACE", "inf", "finite"),
    ],
)
def test_a_bad_value_gives_one_message_naming_the_setting_and_its_source(
    variable: str, value: str, message: str
) -> None:
    problems = problems_of(environ={variable: value})
    assert len(problems) == 1
    setting = "admin_tokens" if variable == "METADATA_ADMIN_TOKEN" else variable[9:].lower()
    assert problems[0].startswith(f"{setting}: ")
    assert message in problems[0]
    assert problems[0].endswith(f"(from {variable})")


def test_several_bad_settings_are_reported_together_from_every_layer(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, 'cache_ttl = "soon"\nlog_level = "loud"\n')
    problems = problems_of(
        config_file=toml,
        environ={"METADATA_LISTEN": "nowhere", "METADATA_TOKEN_MODE": "maybe"},
        flags={"rate_limit": "fast", "log_level": "verbose"},
    )
    assert len(problems) == 5
    text = "\n".join(problems)
    assert f"cache_ttl: expected a positive integer, got 'soon' (from {toml}: cache_ttl)" in text
    assert "listen: expected host:port" in text and "(from METADATA_LISTEN)" in text
    assert "token_mode: expected 'optional' or 'required', got 'maybe'" in text
    assert "rate_limit: expected RATE/BURST" in text and "(from --rate-limit)" in text
    # The flag replaced the TOML value, so only the flag's value is reported.
    assert "got 'verbose' (from --log-level)" in text and "loud" not in text


def test_unknown_toml_keys_are_reported_with_a_suggestion(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, 'cache_tl = 5\nbanana = "yes"\ncache_ttl = 7\n')
    problems = problems_of(config_file=toml, environ={})
    assert problems == [
        f"cache_tl: unknown setting (from {toml}); did you mean 'cache_ttl'?",
        f"banana: unknown setting (from {toml})",
    ]


def test_toml_values_of_the_wrong_type_are_reported_not_raised(tmp_path: Path) -> None:
    toml = write_toml(
        tmp_path,
        "listen = 8775\ncache_ttl = true\ntrusted_proxies = [1]\n"
        "proxy_shared_secret = 123456789012345678\nvendor_data = 3\n",
    )
    problems = problems_of(config_file=toml, environ={})
    assert len(problems) == 5
    assert problems[0] == f"listen: expected a string, got int (from {toml}: listen)"
    assert problems[1].startswith("cache_ttl: expected a string, got bool")
    assert "123456789012345678" not in "\n".join(problems)


def test_toml_gives_lists_and_tables_their_natural_form(tmp_path: Path) -> None:
    toml = write_toml(
        tmp_path,
        'trusted_proxies = ["192.0.2.0/24"]\nshutdown_grace = 3\n'
        '[vendor_data]\ncloud = "x"\n[admin_tokens]\nops = "' + "o" * 16 + '"\n',
    )
    settings = load_settings(toml, environ={})
    assert settings.trusted_proxies == (ipaddress.ip_network("192.0.2.0/24"),)
    assert settings.vendor_data == {"cloud": "x"}
    assert settings.admin_tokens == {"ops": "o" * 16}
    assert settings.shutdown_grace == 3.0


def test_an_unreadable_or_malformed_config_file_is_one_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert problems_of(config_file=missing, environ={})[0].startswith(f"config file {missing}:")
    broken = write_toml(tmp_path, "cache_ttl = = 3\n")
    assert problems_of(config_file=broken, environ={})[0].startswith(f"config file {broken}:")


def test_guest_and_admin_listeners_may_not_share_an_address() -> None:
    problems = problems_of(environ={"METADATA_ADMIN_LISTEN": "127.0.0.1:8775"})
    assert problems == ["admin_listen: must differ from listen (127.0.0.1:8775)"]
    problems = problems_of(
        environ={
            "METADATA_LISTEN": "169.254.169.254:80,[::1]:9775",
            "METADATA_ADMIN_LISTEN": "[::1]:9775",
        }
    )
    assert problems == ["admin_listen: must differ from listen ([::1]:9775)"]


def test_several_guest_listeners_ipv4_and_ipv6() -> None:
    environ = {"METADATA_LISTEN": "169.254.169.254:80, [fd00:ec2::254]:80"}
    settings = load_settings(environ=environ)
    assert settings.listen == (HostPort("169.254.169.254", 80), HostPort("fd00:ec2::254", 80))
    assert settings.masked()["listen"] == "169.254.169.254:80,[fd00:ec2::254]:80"
    assert load_settings(environ={}, flags={"listen": "[::]:8775"}).listen == (
        HostPort("::", 8775),
    )


def test_listen_in_toml_is_a_string_or_an_array(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, 'listen = ["127.0.0.1:8775", "[::1]:8775"]\n')
    assert load_settings(toml, environ={}).listen == (
        HostPort("127.0.0.1", 8775),
        HostPort("::1", 8775),
    )
    toml = write_toml(tmp_path, "listen = 8775\n")
    assert problems_of(config_file=toml, environ={}) == [
        f"listen: expected a string, got int (from {toml}: listen)"
    ]


def test_the_token_hop_limit_defaults_to_one_as_ec2() -> None:
    assert load_settings(environ={}).token_hop_limit == 1
    assert load_settings(environ={"METADATA_TOKEN_HOP_LIMIT": "64"}).token_hop_limit == 64
    problems = problems_of(environ={"METADATA_TOKEN_HOP_LIMIT": "100"})
    assert problems == [
        "token_hop_limit: expected 1 to 64 (as EC2), got '100' (from METADATA_TOKEN_HOP_LIMIT)"
    ]


def test_error_messages_never_show_secrets() -> None:
    padded_secret = "s3cr3t+/s3cr3t+/abc=x"  # not a valid name=secret: '+' in the name
    problems = problems_of(
        environ={
            "METADATA_ADMIN_TOKEN": padded_secret,
            "METADATA_DATABASE_URL": f"postgresql://u:{DB_PASSWORD}@db/x",
        }
    )
    text = "\n".join(problems)
    assert "admin_tokens: token number 1: a name uses only letters" in text
    assert "s3cr3t" not in text
    assert "postgresql://u:***@db/x" in text and DB_PASSWORD not in text


@given(
    host=st.one_of(
        st.ip_addresses().map(str), st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True)
    ),
    port=st.integers(1, 65535),
)
def test_a_host_port_reads_back_from_its_text(host: str, port: int) -> None:
    assert parse_host_port(str(HostPort(host, port))) == HostPort(host, port)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rabbit://a:p1@h1:5672,b:p%2C2@h2:5672/v", "rabbit://a:***@h1:5672,b:***@h2:5672/v"),
        ("rabbit://a:p1@h1,h2:5672/v", "rabbit://a:***@h1,h2:5672/v"),
        # An unescaped comma in a password: nothing of it may show.
        ("rabbit://a:p1@h1,b:secret,2@h2/v", "rabbit://a:***@h2/v"),
    ],
)
def test_a_multi_host_notification_url_is_shown_with_its_hosts_and_no_password(
    url: str, shown: str
) -> None:
    settings = load_settings(environ={"METADATA_NOVA_NOTIFICATION_URL": url})
    assert settings.masked()["nova_notification_url"] == shown


def test_config_show_prints_the_effective_settings_as_json_with_secrets_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = write_toml(tmp_path, f'proxy_shared_secret = "{PROXY_SECRET}"\ncache_ttl = 42\n')
    monkeypatch.setenv("METADATA_ADMIN_TOKEN", f"ops={ADMIN_TOKEN}")
    monkeypatch.setenv("METADATA_DATABASE_URL", f"postgresql+asyncpg://md:{DB_PASSWORD}@db/md")

    code = main(["config", "show", "--config", str(toml), "--listen", "0.0.0.0:8775"])

    out = capsys.readouterr().out
    shown = json.loads(out)
    assert code == 0
    assert shown["cache_ttl"] == 42
    assert shown["listen"] == "0.0.0.0:8775"
    assert shown["admin_tokens"] == {"ops": "***"}
    assert shown["proxy_shared_secret"] == "***"
    assert shown["database_url"] == "postgresql+asyncpg://md:***@db/md"
    assert shown["rate_limit"] == "50/200"
    assert shown["shutdown_grace"] == 10.0
    for secret in (ADMIN_TOKEN, PROXY_SECRET, DB_PASSWORD):
        assert secret not in out


def test_config_show_with_a_bad_setting_exits_2_with_the_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("METADATA_CACHE_TTL", "never")
    assert main(["config", "show"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "cache_ttl: expected a positive integer, got 'never'" in captured.err


def test_serve_with_bad_settings_exits_2_before_listening(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_")}
    environ |= {"METADATA_RATE_LIMIT": "lots", "METADATA_DATABASE_URL": "sqlite:///x.db"}
    result = subprocess.run(
        [sys.executable, "-m", "metadata", "serve", "--listen", "127.0.0.1:0"],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "rate_limit: expected RATE/BURST" in result.stderr
    assert "database_url: expected a URL starting" in result.stderr
    assert "listen: expected host:port with a port from 1 to 65535" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists()
