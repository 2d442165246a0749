"""The cluster tier: application-fair serving across many replicas (DESIGN §7).

:mod:`justitia.cluster.dispatcher` and :mod:`justitia.cluster.placement` are engine-agnostic (no Ray,
no vLLM); the simulated cluster and the Ray Serve ingress drive the same :class:`Dispatcher`.
"""

from justitia.cluster.dispatcher import Decision, Dispatcher
from justitia.cluster.placement import Placement, make_placement, placement_names

__all__ = ["Decision", "Dispatcher", "Placement", "make_placement", "placement_names"]
