"""The playbook: the article's "strategy per cell", as a file that maps matrix cells (per
product line) and named events to the flows that owners there enter."""

from __future__ import annotations

from pydantic import Field, field_validator

from flows.engine.flow_spec import CELLS, Strict


class Playbook(Strict):
    passenger: dict[str, list[str]] = Field(default_factory=dict)
    commercial: dict[str, list[str]] = Field(default_factory=dict)
    events: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("passenger", "commercial")
    @classmethod
    def _cells(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for cell in value:
            if cell not in CELLS:
                raise ValueError(f"{cell!r} is not a cell; cells are {', '.join(CELLS)}")
        return value

    def flows_for(self, product_line: str, cell: str) -> list[str]:
        return list(getattr(self, product_line, {}).get(cell, []))
