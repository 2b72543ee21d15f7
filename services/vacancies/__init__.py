"""Vacancies: practices post vacant sessions here and hear back about them."""

SERVICE = "vacancies"
SCHEMA = "vacancies"
