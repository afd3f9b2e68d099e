"""Shared fixtures: real servers and a real PKI, started by the tests.

Each server fixture lives in its own module under ``tests/fixtures``.
"""

pytest_plugins = [
    "tests.fixtures.dovecot",
    "tests.fixtures.smtp",
    "tests.fixtures.pki",
    "tests.fixtures.deployment",
    "tests.fixtures.postgres",
]
