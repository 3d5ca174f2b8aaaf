"""nova.conf as Nova reads it: several files, later wins, [DEFAULT], deprecated groups,
interpolation; and every bad file, section or option named in a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from metadata.errors import InvalidSettings
from metadata.nova.conf import load_nova_config
from metadata.nova.ini import IniFiles, parse_text

BASE = """\
[DEFAULT]
transport_url = rabbit://nova:secret@mq1:5672,nova:secret@mq2:5672/nova
state_path = /var/lib/nova

[api_database]
connection = mysql+pymysql://nova:dbpass@db.example:3306/nova_api?charset=utf8

[database]
connection = mysql+pymysql://nova:dbpass@db.example:3306/nova?charset=utf8

[neutron]
metadata_proxy_shared_secret = s3cret
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_are_novas(tmp_path: Path) -> None:
    conf = load_nova_config([write(tmp_path, "nova.conf", BASE)])
    assert (
        conf.api_database_url == "mysql+pymysql://nova:dbpass@db.example:3306/nova_api?charset=utf8"
    )
    assert conf.shared_secret == "s3cret"
    assert conf.dhcp_domain == "novalocal"
    assert conf.local_metadata_per_cell is False
    assert conf.vendordata_providers == ("StaticJSON",)
    assert conf.vendordata_dynamic_targets == ()
    assert (conf.vendordata_dynamic_connect_timeout, conf.vendordata_dynamic_read_timeout) == (5, 5)
    assert conf.notification_transport_url == conf.transport_url
    assert conf.notification_topics == ("versioned_notifications",)


def test_later_file_wins_and_repeated_keys_keep_the_last(tmp_path: Path) -> None:
    first = write(tmp_path, "nova.conf", BASE + "[api]\ndhcp_domain = first.example\n")
    override = (
        "[api]\ndhcp_domain = second.example\ndhcp_domain = third.example\n"
        "[oslo_messaging_notifications]\ntransport_url = rabbit://n:p@notify:5672/\n"
    )
    second = write(tmp_path, "override.conf", override)
    conf = load_nova_config([first, second])
    assert conf.dhcp_domain == "third.example"
    assert conf.notification_transport_url == "rabbit://n:p@notify:5672/"
    assert conf.transport_url.startswith("rabbit://nova:secret@mq1")  # type: ignore[union-attr]


def test_deprecated_default_group_and_empty_domain(tmp_path: Path) -> None:
    text = BASE.replace(
        "[DEFAULT]\n", "[DEFAULT]\ndhcp_domain =\nvendordata_jsonfile_path = /etc/nova/vd.json\n"
    )
    conf = load_nova_config([write(tmp_path, "nova.conf", text)])
    # An empty dhcp_domain means no domain at all (hostname served bare).
    assert conf.dhcp_domain == ""
    assert conf.vendordata_jsonfile_path == "/etc/nova/vd.json"


def test_the_current_group_beats_the_deprecated_one_whatever_the_order(tmp_path: Path) -> None:
    text = "[api]\ndhcp_domain = new.example\n" + BASE.replace(
        "[DEFAULT]\n", "[DEFAULT]\ndhcp_domain = old.example\n"
    )
    assert load_nova_config([write(tmp_path, "nova.conf", text)]).dhcp_domain == "new.example"


def test_lists_quotes_continuations_and_interpolation(tmp_path: Path) -> None:
    text = BASE + (
        "[api]\n"
        "vendordata_providers = StaticJSON, DynamicJSON\n"
        "vendordata_dynamic_targets = a@http://vd-a.example/x,\n"
        "    b@https://vd-b.example/y\n"
        'vendordata_jsonfile_path = "$state_path/vendor.json"\n'
        "vendordata_dynamic_read_timeout: 7\n"
        "# a comment\n"
        "; another\n"
        "dhcp_domain = ${neutron.metadata_proxy_shared_secret}.example\n"
    )
    conf = load_nova_config([write(tmp_path, "nova.conf", text)])
    assert conf.vendordata_providers == ("StaticJSON", "DynamicJSON")
    assert [(t.name, t.url) for t in conf.vendordata_dynamic_targets] == [
        ("a", "http://vd-a.example/x"),
        ("b", "https://vd-b.example/y"),
    ]
    assert conf.vendordata_jsonfile_path == "/var/lib/nova/vendor.json"
    assert conf.vendordata_dynamic_read_timeout == 7
    assert conf.dhcp_domain == "s3cret.example"


def test_section_names_are_case_insensitive_except_default_and_dashes_are_underscores() -> None:
    ini = IniFiles(("x",))
    parse_text("[API]\ndhcp-domain = a\n[DEFAULT]\nx = 1\n", "x", ini)
    assert ini.last("api", "dhcp_domain") is not None
    assert ini.last("DEFAULT", "x") is not None


def test_per_cell_mode_needs_only_the_cell_database(tmp_path: Path) -> None:
    text = "[api]\nlocal_metadata_per_cell = True\n[database]\nconnection = sqlite:///cell.db\n"
    conf = load_nova_config([write(tmp_path, "nova.conf", text)])
    assert conf.local_metadata_per_cell and conf.api_database_url is None
    assert conf.shared_secret is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[database]\nconnection = sqlite:///x\n", "[api_database] connection: required"),
        ("[api]\nlocal_metadata_per_cell = True\n", "[database] connection: required"),
        (
            BASE + "[api]\nlocal_metadata_per_cell = maybe\n",
            "[api] local_metadata_per_cell: expected true or false",
        ),
        (BASE + "[api]\nvendordata_providers = StaticJSON,Bogus\n", "unknown provider 'Bogus'"),
        (BASE + "[api]\nvendordata_dynamic_targets = nourl\n", "expected name@http(s)://url"),
        (BASE + "[api]\nvendordata_dynamic_connect_timeout = 1\n", "must be at least 3"),
        (BASE + "[api]\nvendordata_dynamic_read_timeout = soon\n", "expected an integer"),
        (BASE + "[api]\ndhcp_domain = $nowhere\n", "names no option"),
        ("connection = x\n", "before any [section]"),
        ("[api\n", "malformed section header"),
        ("[api]\njust words\n", "expected 'option = value'"),
        ("  indented\n", "continuation line"),
    ],
)
def test_bad_configuration_names_file_section_and_option(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, "nova.conf", text)
    with pytest.raises(InvalidSettings) as caught:
        load_nova_config([path])
    message = str(caught.value)
    assert expected in message
    assert path in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.conf")
    with pytest.raises(InvalidSettings, match=r"absent\.conf: cannot be read"):
        load_nova_config([write(tmp_path, "nova.conf", BASE), missing])
