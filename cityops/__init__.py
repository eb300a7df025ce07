"""cityops (城运): the city-operations centre and emergency response platform."""

__version__ = "0.1.0"
