"""The shared tiny-graph fixtures (tests/graph_fixtures.py) for the tests in this folder."""

from tests.graph_fixtures import brute, images, tiny_model  # noqa: F401
