"""Definition time: ``sql_assets`` and the model it builds (``SqlSource``, table and source options, asset
specs). Cheap and pure: nothing here connects to a database or resolves a secret."""
