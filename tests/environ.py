"""The environment the test session's child processes start from.

Every coordinator and adapter of a test session, in the session's process or started from it,
shares one vault key pair: VIM passwords travel sealed, as they do in production.
"""

from __future__ import annotations

import os

from convection.sealing import generate_keypair

_PRIVATE, _PUBLIC = generate_keypair()
VAULT = {"CONVECTION_VAULT_KEY": _PRIVATE, "CONVECTION_VAULT_PUBLIC_KEY": _PUBLIC}
"""The session's vault keys, as the services read them from the environment."""

for _name, _value in VAULT.items():
    os.environ.setdefault(_name, _value)


def clean_environ(prefixes: tuple[str, ...] = ("CONVECTION_",)) -> dict[str, str]:
    """Return this process's environment without settings under `prefixes`, vault keys kept.

    A child process then sees only the settings its test gives it, and still opens the
    session's sealed secrets.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return env | {name: os.environ.get(name, value) for name, value in VAULT.items()}
