"""Distances and the H3 cells that make "who is near this pickup" an index lookup.

Capacity rows carry the H3 cell (resolution ``RESOLUTION``) of their base; a search around a
pickup asks for the cells of a ``grid_disk`` wide enough to cover the radius, so the database
answers with an ``IN`` over an indexed column on SQLite and PostgreSQL alike; the exact
great-circle distance then trims the disk's corners.
"""

from __future__ import annotations

import math

import h3

#: Resolution 4: cells about 26 km across the edge; base places are district centres, so a
#: finer grid would only make the disk longer without making the answer better.
RESOLUTION = 4
#: A lower bound for the distance between neighbouring cell centres at this resolution (km);
#: dividing a radius by it gives rings enough to cover the circle everywhere in China.
_RING_KM: float = math.sqrt(3) * h3.average_hexagon_edge_length(RESOLUTION, "km") * 0.75  # h3 is untyped
EARTH_KM = 6371.0088


def cell_of(lat: float, lon: float) -> str:
    return str(h3.latlng_to_cell(lat, lon, RESOLUTION))  # h3 is untyped


def rings_for(radius_km: float) -> int:
    return math.ceil(radius_km / _RING_KM) + 1


def disk(cell: str, radius_km: float) -> list[str]:
    """Every cell whose centre area can hold a point within ``radius_km`` of ``cell``."""
    return list(h3.grid_disk(cell, rings_for(radius_km)))


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))
