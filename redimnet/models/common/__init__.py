"""What every model family shares: the family object and its registrations (:mod:`.family`), the
configuration base and the checks about networks (:mod:`.config`), the key-renaming rules
(:mod:`.keymap`) and the embedding head and inference form (:mod:`.network`)."""
