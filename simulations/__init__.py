"""Incentive simulations for bcai-transfer.

A discrete-epoch model of hosts with different strategies (honest, deleter, free-rider, sybil
receipt farmer, intermittent) under the contracts' rules: receipts credit served bytes, data
availability challenges slash stake, and hosting rewards are allocated by the product's own
rule (node.ledger.PayoutLedger on a real LevelDB).

Layout: ``_params`` (scenario TOML, typed), ``_strategies`` (host behaviours), ``_ledger``
(adapter to the payout ledger), ``_model`` (the epoch loop), ``_runner`` (runs, sweeps, CSV and
JSON), ``_plots`` (PNG figures), ``_cli`` (``python -m simulations``). docs/simulations.md
explains the model and its results.
"""

from ._cli import main as main
from ._errors import ScenarioError as ScenarioError
from ._errors import SimulationError as SimulationError
from ._model import EpochRecord as EpochRecord
from ._model import Model as Model
from ._params import STRATEGIES as STRATEGIES
from ._params import Scenario as Scenario
from ._params import load_scenario as load_scenario
from ._params import scenario_from_dict as scenario_from_dict
from ._runner import RunResult as RunResult
from ._runner import SweepResult as SweepResult
from ._runner import run_scenario as run_scenario
from ._runner import run_sweep as run_sweep
from ._runner import write_outputs as write_outputs
