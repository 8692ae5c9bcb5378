"""``oso-new-source``'s library side: the answers model, introspection of a live database, rendering the
cookiecutter template, and ``--update``'s three-way merge."""
