"""Signature verification, certificate requests and the agency CA: a leaf package.

``signing`` imports nothing from ``intake``, ``rules`` or ``mailer``. It returns
facts (:mod:`signing.status`); callers type against the
:class:`~signing.verifier.Verifier` protocol. See ARCHITECTURE.md for the map.
"""
