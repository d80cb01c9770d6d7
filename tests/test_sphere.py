"""The one great-circle distance every SRL distance uses, against known distances."""

import numpy as np
import pytest

from srl_core.sphere import EARTH_RADIUS_KM, chord_to_km, unit_vectors


def _km(a, b):
    ua, ub = unit_vectors(*np.array(a, float).T), unit_vectors(*np.array(b, float).T)
    return chord_to_km(np.linalg.norm(ua - ub, axis=-1))


@pytest.mark.parametrize("a, b, km", [
    ((0.0, 0.0), (1.0, 0.0), np.pi * EARTH_RADIUS_KM / 180.0),  # a degree of the equator
    ((0.0, 0.0), (180.0, 0.0), np.pi * EARTH_RADIUS_KM),  # antipodes
    ((10.0, 90.0), (-170.0, 90.0), 0.0),  # the pole, whatever the longitude
    ((179.9, 0.0), (-179.9, 0.0), 0.2 * np.pi * EARTH_RADIUS_KM / 180.0),  # across the antimeridian
    ((5.7, 50.9), (5.7, 50.9 + 30.0 / 111_195.0), 0.030),  # one 30 m pixel north at Meuse
])
def test_great_circle_distances(a, b, km):
    assert _km([a], [b])[0] == pytest.approx(km, rel=1e-6, abs=1e-9)


def test_unit_vectors_lie_on_the_sphere():
    lon, lat = np.meshgrid(np.linspace(-180, 180, 7), np.linspace(-90, 90, 5))
    assert np.allclose(np.linalg.norm(unit_vectors(lon.ravel(), lat.ravel()), axis=1), 1.0)
