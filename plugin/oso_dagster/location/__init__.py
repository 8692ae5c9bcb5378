"""The code location: installed source packages found through entry points, the umbrella dbt project, the
staging assets, asset checks, schedules and ``Definitions``. Runs at load, connects to nothing."""
