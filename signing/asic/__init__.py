"""ASiC-E: the container (:mod:`.container`), its XAdES (:mod:`.xades`) and CAdES
(:mod:`.cades`) signatures, and the verdict on them all (:mod:`.verify`)."""
