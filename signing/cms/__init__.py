"""CMS signatures: detached (``.p7s``, S/MIME), enveloping (``.p7m``) and time-stamped
(``.tsd``, ``.m7m``, a ``.tsr`` beside the file)."""
