"""The staff digest: what waits for a person, in one mail read in a minute.

``collect.py`` reads the facts from the store, ``chart.py`` draws the
applications-per-day chart, ``render.py`` lays them out for the ``digest``
templates of ``mailer/`` and queues the mail.
"""

from intake.app.digest.collect import DigestFacts, collect
from intake.app.digest.render import Digest, build_digest, queue_digest

__all__ = ["Digest", "DigestFacts", "build_digest", "collect", "queue_digest"]
