"""The names `report --by` accepts. Plain constants, importable without SQLAlchemy, so the CLI
can show them in its help without loading the report queries."""

GROUPINGS = ("tier", "model", "deployment", "task_type", "project", "batch", "day")
BATCH_LEVEL_GROUPINGS = {"task_type", "project", "batch"}  # constant over an item's attempts
