"""The ``bisect`` sweeper's settings, stored in Hydra's ConfigStore as ``hydra/sweeper: base_bisect``.

``conf/hydra/sweeper/bisect.yaml`` extends this schema with the defaults and their meaning.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module outside sys.modules, where
# dataclasses cannot resolve string annotations.
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class ThresholdConf:
    kind: str = "relative"  # relative: a factor of the clean model's measure (level 0); absolute: the measure itself
    value: float = 0.5


@dataclass
class BisectSweeperConf:
    _target_: str = "hydra_plugins.degrade_bisect_sweeper.bisect_sweeper.BisectSweeper"
    measure: str = "correct"  # a numeric record column, averaged over a probe's records
    direction: str = "falls"  # how the measure moves as damage grows: falls (accuracy) or rises (perplexity)
    threshold: ThresholdConf = field(default_factory=ThresholdConf)
    lo: Optional[float] = None  # the range searched by every search, either order; when null, ranges.<method>
    hi: Optional[float] = None
    ranges: dict[str, Any] = field(default_factory=dict)  # method: [lo, hi]; checked when the sweep starts
    tolerance: float = 0.05  # linear axis: levels; log axis: a ratio (0.1: ends within 10 %)
    max_probes: int = 12  # per search, the range's two ends included
    n_rep: Optional[int] = 3  # repetitions at each probe (experiment.n_rep of each job); null: the experiment's
    params: Optional[dict[str, str]] = None  # a grid of searches, as the basic sweeper's params


# As base_bisect, like every schema of degrade: conf/hydra/sweeper/bisect.yaml extends it by name (a schema stored
# under the YAML's own name would be matched to it implicitly, which Hydra deprecates).
ConfigStore.instance().store(group="hydra/sweeper", name="base_bisect", node=BisectSweeperConf, provider="degrade")
