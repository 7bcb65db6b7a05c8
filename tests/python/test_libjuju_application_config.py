"""Application config (the charm config calls Juju 3.6 serves on the Application facade)
driven through python-libjuju's Application, as `juju config` does: get_config → Get,
set_config → SetConfigs, reset_config → UnsetApplicationsConfig. The secret-typed
options are where a granted secret's URI goes (Juju's documentation of user secrets).
Frames are validated against Application.json (v19 schema for the v20 calls)."""

from __future__ import annotations

import pytest
from juju.application import Application
from juju.errors import JujuAPIError, JujuError

from helpers import bounded, model_conn, unique


def _app(model, name: str) -> Application:
    # python-libjuju tracks applications through the AllWatcher; the emulator's watcher
    # sends no application deltas, so the entity is made directly (get/set/reset_config
    # use only its name and the model's connection).
    return Application(name, model)


def _plain_juju_error(exc: BaseException) -> bool:
    return isinstance(exc, JujuError) and not isinstance(exc, JujuAPIError)


async def test_get_config_describes_every_option(emulator):
    async with model_conn(emulator) as model:
        config = await bounded(_app(model, "mysql").get_config())
    assert set(config) == {"root-password", "port", "database-name", "tls"}
    # A secret option without a default, never set: no value, no default.
    assert config["root-password"] == {
        "description": "The administrator's credentials: a Juju secret URI",
        "source": "unset",
        "type": "secret",
    }
    assert config["port"]["source"] == "default"
    assert config["port"]["value"] == 3306 and config["port"]["default"] == 3306
    assert config["tls"]["value"] is False


async def test_set_and_reset_a_secret_option(fresh_emulator):
    emu = fresh_emulator
    async with model_conn(emu) as model:
        uri = await bounded(model.add_secret(unique("db"), ["password=one"]))
        app = _app(model, "wordpress")
        await bounded(app.set_config({"db-password": uri, "blog-title": "Notes", "debug": "true"}))
        config = await bounded(app.get_config())
        assert config["db-password"]["value"] == uri
        assert config["db-password"]["source"] == "user"
        assert config["blog-title"] == {
            "default": "My Blog",
            "description": "The blog's title",
            "source": "user",
            "type": "string",
            "value": "Notes",
        }
        # Typed as the option: a boolean, not the string sent.
        assert config["debug"]["value"] is True
        # A value equal to the default reads as the default.
        await bounded(app.set_config({"blog-title": "My Blog"}))
        assert (await bounded(app.get_config()))["blog-title"]["source"] == "default"

        await bounded(app.reset_config(["db-password", "debug"]))
        config = await bounded(app.get_config())
        assert config["db-password"]["source"] == "unset"
        assert "value" not in config["db-password"]
        assert config["debug"]["source"] == "default"
        # Resetting an option that is not set is fine.
        await bounded(app.reset_config(["db-password"]))


async def test_a_secret_that_does_not_exist_is_accepted(fresh_emulator):
    # Juju checks the URI's syntax only: not that the secret exists or was granted.
    async with model_conn(fresh_emulator) as model:
        app = _app(model, "mysql")
        await bounded(app.set_config({"root-password": "secret:9m4e2mr0ui3e8a215n4g"}))
        config = await bounded(app.get_config())
        assert config["root-password"]["value"] == "secret:9m4e2mr0ui3e8a215n4g"


@pytest.mark.parametrize(
    "config, message",
    [
        ({"nope": "x"}, 'parsing settings for application: unknown option "nope"'),
        ({"port": "abc"}, 'parsing settings for application: option "port" expected int, got "abc"'),
        ({"port": ""}, 'parsing settings for application: option "port" expected int, got ""'),
        ({"tls": "yes"}, 'parsing settings for application: option "tls" expected boolean, got "yes"'),
        (
            {"root-password": "secret:foo"},
            'parsing settings for application: invalid secret URI for option "root-password": '
            'secret URI "secret:foo" not valid',
        ),
        (
            {"root-password": "9m4e2mr0ui3e8a215n4g"},
            'updating charm config settings: option "root-password" expected secret, '
            'got "9m4e2mr0ui3e8a215n4g"',
        ),
    ],
)
async def test_set_config_refuses_bad_values_and_writes_nothing(fresh_emulator, config, message):
    async with model_conn(fresh_emulator) as model:
        app = _app(model, "mysql")
        # A good key beside the bad one is not written either.
        with pytest.raises(JujuError) as ei:
            await bounded(app.set_config({"database-name": "shop", **config}))
        assert _plain_juju_error(ei.value)
        assert ei.value.errors == [message]
        assert (await bounded(app.get_config()))["database-name"]["source"] == "unset"


async def test_unknown_application_and_option(emulator):
    async with model_conn(emulator) as model:
        with pytest.raises(JujuAPIError) as ei:
            await bounded(_app(model, "nosuchapp").get_config())
        assert ei.value.message == 'application "nosuchapp" not found'
        assert ei.value.error_code == "not found"
        with pytest.raises(JujuError) as ei:
            await bounded(_app(model, "nosuchapp").set_config({"x": "y"}))
        assert ei.value.errors == ['application "nosuchapp" not found']
        with pytest.raises(JujuError) as ei:
            await bounded(_app(model, "mysql").reset_config(["nope"]))
        assert ei.value.errors == [
            'updating application charm settings: unknown option "nope"'
        ]


async def test_reader_can_get_but_not_set(emulator):
    async with model_conn(emulator, user="reader") as model:
        app = _app(model, "mysql")
        assert "port" in await bounded(app.get_config())
        with pytest.raises(JujuAPIError) as ei:
            await bounded(app.set_config({"port": "1"}))
        assert ei.value.message == "permission denied"
