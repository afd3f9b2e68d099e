"""Trust shared by PDF, CMS and ASiC verification: anchors, trusted lists, qualification,
revocation fetching, and the validation contexts built from them (:mod:`signing.trust.context`)."""
