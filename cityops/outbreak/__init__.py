"""Outbreak command (战时疫情处置, issue 15): outbreak mode per disease x area, the case registry,
contact tracing as a graph (密接 / 次密接 and their end dates by rule), control zones over the base
data with automatic downgrade, supplies for zones, the daily situation report (see docs/outbreak.md).

Pure rules (no database, NumPy-vectorised): ``rules`` (the versioned rule sets), ``categorise``
(person categories and end dates), ``zonerules`` (downgrade decisions, point-in-zone counts)."""
