"""Values an operator may legally put in the worker's .env, which must come
back exactly: the test bed's testbed_hostile_env (inventory/demo), read by
the unit tests through the role's quoting and worker_src's parser, and by
the integration tests through each worker's own parser on its host."""

from __future__ import annotations

from pathlib import Path

import yaml

TESTBED_VARS = Path(__file__).resolve().parents[2] / "inventory" / "demo" / "group_vars" / "all" / "testbed.yml"


class _Loader(yaml.SafeLoader):
    """YAML as Ansible reads it, with !unsafe values as plain strings."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))

ENV_VALUES: dict[str, str] = yaml.load(TESTBED_VARS.read_text(), Loader=_Loader)["testbed_hostile_env"]
