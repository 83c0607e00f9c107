"""The secret key and the vault (DESIGN §7, "Secrets at rest and in messages"): no I/O here."""

from __future__ import annotations

import pytest

from flowgate.settings import SettingsError, load_settings
from flowgate.vault import SecretKeyError, Vault


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_settings_blank_secret_key_raises_one_line_naming_variable(blank: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(secret_key=blank)

    message = str(raised.value)
    assert message.startswith("FLOWGATE_SECRET_KEY: ")
    assert "empty" in message
    assert "\n" not in message


def test_vault_blank_secret_encrypt_raises_secret_key_error() -> None:
    vault = Vault(lambda: " ")

    with pytest.raises(SecretKeyError, match="the secret key is empty"):
        vault.encrypt({"token": "t"})


def test_vault_credentials_nested_300_deep_round_trip() -> None:
    vault = Vault(lambda: "k" * 32)
    credentials: object = {"token": "t"}
    for _ in range(300):
        credentials = {"nested": [credentials]}

    assert vault.decrypt(vault.encrypt(credentials)) == credentials
