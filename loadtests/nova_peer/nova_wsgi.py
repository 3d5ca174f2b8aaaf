"""Gunicorn entry for Nova's own metadata app. Runs in the Nova venv, not ours.

`application` is nova.wsgi.metadata.application: the paste pipeline of api-paste.ini
(`[composite:metadata]`: cors, http_proxy_to_wsgi, MetadataRequestHandler), configured by
OS_NOVA_CONFIG_DIR (nova.conf, api-paste.ini, optional overrides in OS_NOVA_CONFIG_FILES).

One change, because no Neutron exists here: the module attribute
nova.network.security_group_api.get_instance_security_groups, which asks Neutron for the
instance's ports and their groups, is replaced by a look-up in the JSON file named by
NOVA_PEER_SECURITY_GROUPS (instance uuid -> group names; what Neutron would answer). That
function does no database access, so nothing Nova reads from its databases is changed.
"""

from nova import monkey_patch

monkey_patch.patch(backend="threading")  # as nova/wsgi/metadata.py starts

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from nova.network import security_group_api  # noqa: E402

_GROUPS_FILE = os.environ.get("NOVA_PEER_SECURITY_GROUPS", "")


def _groups_without_neutron(context, instance, detailed=False):
    groups = {}
    if _GROUPS_FILE:
        with open(_GROUPS_FILE) as source:
            groups = json.load(source)
    return [{"name": name} for name in groups.get(instance.uuid, [])]


security_group_api.get_instance_security_groups = _groups_without_neutron

# Nova's init_application hands sys.argv to oslo.config, which would reject gunicorn's own
# options: hide them while the app loads.
_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    from nova.wsgi.metadata import application  # noqa: F401
finally:
    sys.argv = _argv
