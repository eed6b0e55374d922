"""The image a replica runs: the resource's image and version as one reference."""

from __future__ import annotations

import pytest

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_operator import model


@pytest.mark.parametrize(
    ("image", "version", "reference"),
    [
        ("ghcr.io/org/img", "", "ghcr.io/org/img:latest"),
        ("ghcr.io/org/img", "1.2", "ghcr.io/org/img:1.2"),
        # The seed's sample Analytics: the tag in the image, no version.
        ("ghcr.io/org/img:latest", "", "ghcr.io/org/img:latest"),
        ("localhost:5000/img", "", "localhost:5000/img:latest"),
        ("localhost:5000/img:2", "", "localhost:5000/img:2"),
        ("ghcr.io/org/img@sha256:abc", "", "ghcr.io/org/img@sha256:abc"),
    ],
)
def test_image_reference(image: str, version: str, reference: str) -> None:
    spec = model.ServiceSpec.from_proto(
        analytics_pb2.AnalyticsSpec(image=image, version=version, job_type="ondemand", reps=1)
    )
    assert spec.image_ref == reference
