"""Hostile but legal .env values (the test bed's testbed_hostile_env) come
back exactly through each worker's own parser: worker_src's on Python 2.7,
django-dotenv (upstream saltant's) on Python 2.7 and 3."""

from __future__ import annotations

import pytest
from helpers.env_reader import read_env
from helpers.hostile import ENV_VALUES

HOSTS = {
    "python-worker27": ("worker_src", "2.7"),
    "python-upstream27": ("django-dotenv", "2.7"),
    "python-upstream39": ("django-dotenv", "3.9"),
}


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_env_values_survive_the_workers_parser(fleet, host):
    read = read_env(fleet, host)
    assert (read["parser"], read["python"][:3]) == HOSTS[host]
    assert {k: v for k, v in read["values"].items() if k in ENV_VALUES} == ENV_VALUES
