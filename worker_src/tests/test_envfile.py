"""The .env parser and the typed setting readers."""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os

import pytest

from saltant.envfile import (
    SettingsError,
    get_bool,
    get_int,
    get_none_or_int,
    get_str,
    parse_lines,
    read_env_file,
)


def parse(text):
    return dict(parse_lines(text.splitlines(), "test.env"))


def test_key_value_comments_blank_lines_and_export():
    values = parse(
        "# a comment\n"
        "\n"
        "   # an indented comment\n"
        "PLAIN=value\n"
        "  SPACED  =  spaced value  \n"
        "export EXPORTED=yes\n"
        "EMPTY=\n"
        "INLINE=abc # a trailing comment\n"
        "HASH=abc#def\n"
        "URL=pyamqp://user:p%40ss@host:5672/vhost\n"
        "EQUALS=a=b=c\n"
    )
    assert values == {
        "PLAIN": "value",
        "SPACED": "spaced value",
        "EXPORTED": "yes",
        "EMPTY": "",
        "INLINE": "abc",
        "HASH": "abc#def",
        "URL": "pyamqp://user:p%40ss@host:5672/vhost",
        "EQUALS": "a=b=c",
    }


def test_quoted_values():
    values = parse(
        "SINGLE='single # not a comment'\n"
        'DOUBLE="double \\"quoted\\" \\\\ value"\n'
        "LITERAL='back\\slash $HOME'\n"
        'WITH_COMMENT="x y"  # comment\n'
        "EMPTY_QUOTES=''\n"
    )
    assert values["SINGLE"] == "single # not a comment"
    assert values["DOUBLE"] == 'double "quoted" \\ value'
    assert values["LITERAL"] == "back\\slash $HOME"
    assert values["WITH_COMMENT"] == "x y"
    assert values["EMPTY_QUOTES"] == ""


def test_later_lines_win():
    assert parse("A=1\nA=2\n") == {"A": "2"}


@pytest.mark.parametrize(
    "line, message",
    [
        ("NO_EQUALS_SIGN", "expected KEY=VALUE"),
        ("1BAD=x", "invalid variable name"),
        ("BAD-NAME=x", "invalid variable name"),
        ("=value", "invalid variable name"),
        ("OPEN='unterminated", "unterminated"),
        ('TRAIL="quoted" junk', "after the closing quote"),
    ],
)
def test_invalid_lines_name_file_and_line(line, message):
    with pytest.raises(SettingsError) as error:
        parse_lines(["OK=1", line], "test.env")
    assert message in str(error.value)
    assert "test.env, line 2" in str(error.value)


def test_read_env_file(tmpdir):
    path = os.path.join(str(tmpdir), ".env")
    with io.open(path, "w", encoding="utf-8") as env_file:
        env_file.write("A=1\nB='two'\n")
    assert dict(read_env_file(path)) == {"A": "1", "B": "two"}


def test_missing_env_file_is_a_clear_error(tmpdir):
    path = os.path.join(str(tmpdir), ".env")
    with pytest.raises(SettingsError) as error:
        read_env_file(path)
    message = str(error.value)
    assert ".env not found at %s" % (path,) in message
    assert "copy .env.example to .env" in message


@pytest.mark.parametrize("value, expected", [("True", True), ("False", False)])
def test_booleans(value, expected):
    assert get_bool({"FLAG": value}, "FLAG") is expected


@pytest.mark.parametrize("value", ["true", "false", "1", "0", "yes", "", " True"])
def test_booleans_are_strict_and_name_the_variable(value):
    with pytest.raises(SettingsError) as error:
        get_bool({"RABBITMQ_USES_SSL": value}, "RABBITMQ_USES_SSL")
    assert "RABBITMQ_USES_SSL must be exactly True or False" in str(error.value)


def test_boolean_default_and_required():
    assert get_bool({}, "FLAG", default=False) is False
    with pytest.raises(SettingsError) as error:
        get_bool({}, "FLAG")
    assert "FLAG" in str(error.value)


def test_none_or_int():
    assert get_none_or_int({"LIMIT": "None"}, "LIMIT") is None
    assert get_none_or_int({"LIMIT": "10"}, "LIMIT") == 10
    assert get_none_or_int({}, "LIMIT", default=10) == 10
    assert get_none_or_int({"LIMIT": ""}, "LIMIT", default=10) == 10
    with pytest.raises(SettingsError) as error:
        get_none_or_int(
            {"CELERY_BROKER_POOL_LIMIT": "none"}, "CELERY_BROKER_POOL_LIMIT"
        )
    assert "CELERY_BROKER_POOL_LIMIT must be None or an integer" in str(error.value)


def test_int():
    assert get_int({"N": "300"}, "N") == 300
    assert get_int({}, "N", default=5) == 5
    with pytest.raises(SettingsError) as error:
        get_int({"SINGULARITY_PULL_RETRIES": "five"}, "SINGULARITY_PULL_RETRIES")
    assert "SINGULARITY_PULL_RETRIES must be an integer" in str(error.value)


def test_str_required():
    assert get_str({"A": "x"}, "A", required=True) == "x"
    assert get_str({}, "A", default="d") == "d"
    with pytest.raises(SettingsError) as error:
        get_str({"API_AUTH_TOKEN": ""}, "API_AUTH_TOKEN", required=True)
    assert "API_AUTH_TOKEN is required" in str(error.value)
