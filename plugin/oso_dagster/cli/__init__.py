"""The click commands ``oso-new-source`` and ``oso-sources``: parse, call the library, print."""
