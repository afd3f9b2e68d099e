"""Demo and test tooling, not the product: the demo PKI (:mod:`.pki`), a XAdES/ASiC-E
builder (:mod:`.xades`) and a throw-away agency CA (:mod:`.ca`)."""
