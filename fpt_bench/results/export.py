"""The JSON Schema of result files, as committed in ``schemas/cell-result.schema.json``."""

from __future__ import annotations

import json

from fpt_bench.results.schema import CellResult


def result_schema_json() -> str:
    schema = CellResult.model_json_schema()
    schema["$id"] = "https://fpt-bench.invalid/schemas/cell-result.schema.json"
    schema["title"] = "fpt-bench cell result"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
