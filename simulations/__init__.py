"""Incentive simulations for bcai-transfer: one model of the product.

Hosts with different strategies (honest, lazy, flaky, free-rider, sybil receipt ring,
fetch-on-challenge outsourcer, self-challenger, challenge griefer) run under the product's own
rules and deployment defaults: parameters from ``chain.deploy.DeployParams`` and
``node.content``, reputation and reward allocation from ``node.ledger`` (imported, not
re-implemented), sample detection by the law of ``node.content.draw_sample_indices``. Every
scenario runs over many seeds in parallel and reports each strategy's ROI (revenue / cost) with
a 95% confidence interval. ``--evm`` runs a small scenario on the real contracts (py-evm)
through the indexer and the PayoutLedger and compares it with the model.

Layout: ``_product`` (the imported rules and defaults), ``_strategies`` (strategy flags),
``_params`` (scenario TOML), ``_model`` (one seed, numpy), ``_stats`` (t-intervals),
``_runner`` (seeds in parallel, summary.json), ``_plots`` (PNG figures), ``_evm``
(EVM-in-the-loop), ``_cli`` (``python -m simulations``). docs/simulations.md has the results.
"""

from ._cli import main as main
from ._errors import ScenarioError as ScenarioError
from ._errors import SimulationError as SimulationError
from ._model import Model as Model
from ._model import SeedResult as SeedResult
from ._params import Scenario as Scenario
from ._params import load_scenario as load_scenario
from ._params import scenario_from_dict as scenario_from_dict
from ._runner import MultiResult as MultiResult
from ._runner import run_seeds as run_seeds
from ._runner import summary as summary
from ._runner import write_outputs as write_outputs
from ._strategies import NAMES as NAMES
from ._strategies import STRATEGIES as STRATEGIES
