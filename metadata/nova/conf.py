"""The parts of nova.conf the Nova source uses, each read as Nova's option declares it.

Defaults and deprecated names are Nova 34.0.0's (`nova/conf/api.py`, `neutron.py`,
`database.py`, `notifications.py`; oslo.messaging's `transport_url`). A value that does not
parse is an error naming the file, section and option; so is a missing required option.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from metadata.errors import InvalidSettings
from metadata.nova.ini import DEFAULT, IniFiles, Value, read_files

# oslo.config's interpolation: $name or ${name} from [DEFAULT], ${group.name} from a group,
# $$ for a dollar sign.
_TEMPLATE = re.compile(r"\$(?:(\$)|([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][\w.]*)\})")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
VENDORDATA_PROVIDERS = frozenset({"StaticJSON", "DynamicJSON"})


@dataclass(frozen=True, slots=True)
class DynamicTarget:
    name: str
    url: str


@dataclass(frozen=True, slots=True)
class NeutronAuth:
    """`[neutron]`'s Keystone password credentials (keystoneauth's `password`/`v3password`
    options) and adapter options: how Nova reaches Neutron's API."""

    auth_url: str
    username: str
    password: str
    project_name: str | None
    project_id: str | None
    user_domain_name: str | None
    user_domain_id: str | None
    project_domain_name: str | None
    project_domain_id: str | None
    region_name: str | None
    valid_interfaces: tuple[str, ...]
    endpoint_override: str | None
    timeout: float


@dataclass(frozen=True, slots=True)
class NovaConfig:
    files: tuple[str, ...]
    api_database_url: str | None
    cell_database_url: str | None
    local_metadata_per_cell: bool
    shared_secret: str | None
    dhcp_domain: str
    vendordata_providers: tuple[str, ...]
    vendordata_jsonfile_path: str | None
    vendordata_dynamic_targets: tuple[DynamicTarget, ...]
    vendordata_dynamic_connect_timeout: int
    vendordata_dynamic_read_timeout: int
    # [DEFAULT] transport_url: the base cell transport templates are expanded against.
    transport_url: str | None
    notification_transport_url: str | None
    notification_topics: tuple[str, ...]
    # None: no Keystone credentials in [neutron]; security groups are then unlisted.
    neutron: NeutronAuth | None = None
    # [vendordata_dynamic_auth]: the token Nova's DynamicJSON POSTs carry. None: no token.
    vendordata_auth: NeutronAuth | None = None


class _Reader:
    def __init__(self, ini: IniFiles) -> None:
        self.ini = ini

    def raw(self, section: str, key: str, deprecated: str | None = None) -> Value | None:
        """The last value, under the option's group or its deprecated one (oslo.config
        prefers the current group whatever the file order)."""
        value = self.ini.last(section, key)
        if value is None and deprecated is not None:
            value = self.ini.last(deprecated, key)
        return value

    def text(
        self, section: str, key: str, default: str | None = None, deprecated: str | None = None
    ) -> str | None:
        value = self.raw(section, key, deprecated)
        if value is None:
            return default
        return self.substitute(value, section, key, depth=0)

    def substitute(self, value: Value, section: str, key: str, depth: int) -> str:
        if depth > 8:
            raise self.error(value, section, key, "interpolation nests too deeply")

        def replace(match: re.Match[str]) -> str:
            if match.group(1):
                return "$"
            name = match.group(2) or match.group(3)
            group, _, option = name.rpartition(".") if "." in name else (DEFAULT, "", name)
            found = self.ini.last(group, option)
            if found is None:
                raise self.error(
                    value, section, key, f"${{{name}}} names no option set in the nova config"
                )
            return self.substitute(found, group, option, depth + 1)

        return _TEMPLATE.sub(replace, value.text)

    def boolean(self, section: str, key: str, default: bool) -> bool:
        value = self.raw(section, key)
        if value is None:
            return default
        text = self.substitute(value, section, key, 0).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise self.error(value, section, key, f"expected true or false, got {value.text!r}")

    def integer(
        self, section: str, key: str, default: int, minimum: int, deprecated: str | None = None
    ) -> int:
        value = self.raw(section, key, deprecated)
        if value is None:
            return default
        text = self.substitute(value, section, key, 0).strip()
        try:
            number = int(text)
        except ValueError:
            raise self.error(value, section, key, f"expected an integer, got {text!r}") from None
        if number < minimum:
            raise self.error(value, section, key, f"must be at least {minimum}, got {number}")
        return number

    def items(
        self, section: str, key: str, default: Sequence[str], deprecated: str | None = None
    ) -> tuple[str, ...]:
        """A ListOpt: comma-separated, each item stripped, empty items dropped."""
        text = self.text(section, key, None, deprecated)
        if text is None:
            return tuple(default)
        return tuple(item.strip() for item in text.split(",") if item.strip())

    def error(self, value: Value | None, section: str, key: str, problem: str) -> InvalidSettings:
        where = value.origin if value is not None else ", ".join(self.ini.files)
        return InvalidSettings([f"nova config {where}: [{section}] {key}: {problem}"])


def load_nova_config(paths: Sequence[str]) -> NovaConfig:
    """nova.conf as the metadata API reads it; every problem names file, section, option."""
    read = _Reader(read_files(paths))
    per_cell = read.boolean("api", "local_metadata_per_cell", False)
    api_url = read.text("api_database", "connection")
    cell_url = read.text("database", "connection")
    if per_cell and not cell_url:
        raise read.error(
            read.raw("database", "connection"),
            "database",
            "connection",
            "required when [api] local_metadata_per_cell = true",
        )
    if not per_cell and not api_url:
        raise read.error(
            read.raw("api_database", "connection"),
            "api_database",
            "connection",
            "required to find each instance's cell (or set [api] "
            "local_metadata_per_cell = true and [database] connection)",
        )
    providers = read.items("api", "vendordata_providers", ["StaticJSON"], DEFAULT)
    for provider in providers:
        if provider not in VENDORDATA_PROVIDERS:
            raise read.error(
                read.raw("api", "vendordata_providers", DEFAULT),
                "api",
                "vendordata_providers",
                f"unknown provider {provider!r} (Nova knows StaticJSON and DynamicJSON)",
            )
    targets = []
    for item in read.items("api", "vendordata_dynamic_targets", [], DEFAULT):
        name, at, url = item.partition("@")
        if not at or not name or not url.startswith(("http://", "https://")):
            raise read.error(
                read.raw("api", "vendordata_dynamic_targets", DEFAULT),
                "api",
                "vendordata_dynamic_targets",
                f"expected name@http(s)://url, got {item!r}",
            )
        targets.append(DynamicTarget(name, url))
    secret = read.text("neutron", "metadata_proxy_shared_secret", "")
    transport = read.text(DEFAULT, "transport_url")
    return NovaConfig(
        files=tuple(paths),
        api_database_url=api_url or None,
        cell_database_url=cell_url or None,
        local_metadata_per_cell=per_cell,
        shared_secret=secret or None,
        dhcp_domain=read.text("api", "dhcp_domain", "novalocal", DEFAULT) or "",
        vendordata_providers=providers,
        vendordata_jsonfile_path=read.text("api", "vendordata_jsonfile_path", None, DEFAULT)
        or None,
        vendordata_dynamic_targets=tuple(targets),
        vendordata_dynamic_connect_timeout=read.integer(
            "api", "vendordata_dynamic_connect_timeout", 5, 3, DEFAULT
        ),
        vendordata_dynamic_read_timeout=read.integer(
            "api", "vendordata_dynamic_read_timeout", 5, 0, DEFAULT
        ),
        transport_url=transport or None,
        notification_transport_url=read.text("oslo_messaging_notifications", "transport_url")
        or transport
        or None,
        notification_topics=read.items(
            "notifications", "versioned_notifications_topics", ["versioned_notifications"]
        ),
        neutron=_keystone_auth(read, "neutron"),
        vendordata_auth=_keystone_auth(read, "vendordata_dynamic_auth"),
    )


_PASSWORD_PLUGINS = frozenset({"password", "v3password"})
_INTERFACES = frozenset({"public", "internal", "admin"})
# keystoneauth's own default when [neutron] sets no timeout is none at all; a guest's
# request must not wait on Neutron without bound.
NEUTRON_TIMEOUT_DEFAULT = 5.0


def _keystone_auth(read: _Reader, section: str) -> NeutronAuth | None:
    """`[neutron]` or `[vendordata_dynamic_auth]` as keystoneauth's conf loading reads it;
    None without `auth_type`."""
    # auth_plugin: keystoneauth's deprecated name of auth_type.
    plugin = read.text(section, "auth_type") or read.text(section, "auth_plugin")
    if not plugin:
        return None
    if plugin not in _PASSWORD_PLUGINS:
        raise read.error(
            read.raw(section, "auth_type") or read.raw(section, "auth_plugin"),
            section,
            "auth_type",
            f"unsupported {plugin!r} (this service reads password and v3password)",
        )

    def required(key: str) -> str:
        value = read.text(section, key)
        if not value:
            raise read.error(
                read.raw(section, key), section, key, f"required by auth_type = {plugin}"
            )
        return value

    auth_url = required("auth_url")
    if not auth_url.startswith(("http://", "https://")):
        raise read.error(
            read.raw(section, "auth_url"), section, "auth_url", f"not an http(s) URL: {auth_url!r}"
        )
    username = required("username")
    password = required("password")

    def optional(key: str) -> str | None:
        return read.text(section, key) or None

    project_name, project_id = optional("project_name"), optional("project_id")
    if not project_name and not project_id:
        raise read.error(
            read.raw(section, "project_name"),
            section,
            "project_name",
            "project_name or project_id is required (Nova's token is project scoped)",
        )
    default_domain_name = optional("default_domain_name")
    default_domain_id = optional("default_domain_id")
    user_domain_name = optional("user_domain_name") or default_domain_name
    user_domain_id = optional("user_domain_id") or default_domain_id
    if not user_domain_name and not user_domain_id:
        raise read.error(
            read.raw(section, "user_domain_name"),
            section,
            "user_domain_name",
            "user_domain_name or user_domain_id is required with username",
        )
    project_domain_name = optional("project_domain_name") or default_domain_name
    project_domain_id = optional("project_domain_id") or default_domain_id
    if project_name and not project_id and not project_domain_name and not project_domain_id:
        raise read.error(
            read.raw(section, "project_domain_name"),
            section,
            "project_domain_name",
            "project_domain_name or project_domain_id is required with project_name",
        )
    interfaces = tuple(
        item.removesuffix("URL")
        for item in read.items(section, "valid_interfaces", ["internal", "public"])
    )
    for interface in interfaces:
        if interface not in _INTERFACES:
            raise read.error(
                read.raw(section, "valid_interfaces"),
                section,
                "valid_interfaces",
                f"unknown interface {interface!r} (public, internal or admin)",
            )
    override = optional("endpoint_override")
    if override is not None and not override.startswith(("http://", "https://")):
        raise read.error(
            read.raw(section, "endpoint_override"),
            section,
            "endpoint_override",
            f"not an http(s) URL: {override!r}",
        )
    timeout = read.integer(section, "timeout", 0, 0)
    return NeutronAuth(
        auth_url=auth_url,
        username=username,
        password=password,
        project_name=project_name,
        project_id=project_id,
        user_domain_name=user_domain_name,
        user_domain_id=user_domain_id,
        project_domain_name=project_domain_name,
        project_domain_id=project_domain_id,
        region_name=optional("region_name"),
        valid_interfaces=interfaces or ("internal", "public"),
        endpoint_override=override,
        timeout=float(timeout) if timeout else NEUTRON_TIMEOUT_DEFAULT,
    )
