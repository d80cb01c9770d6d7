"""The size check before a model is built must stay cheap.

``build_bounded`` builds each module on torch's meta device first. The first arithmetic on a meta
tensor makes torch import ``torch._dynamo``: 1.4-1.8 s on this project's machine, once per process,
which was most of the time ``embed-points`` spent loading the bundled location model (1.8 s against
30-70 ms without it). Builders therefore compute their fixed tables on the CPU. This test builds
every location encoding with every network, and loads every bundled model, in a fresh process and
names the first build after which ``torch._dynamo`` was imported.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_BUILD_EVERYTHING = r"""
import sys
from srl_core import bundle
from srl_core.model_build import build_bounded
from srl_core.models.location.encoder import ENCODINGS, build_from_config

configs = [{"encoding": {"name": e}, "network": {"name": n}}
           for e in ENCODINGS for n in ("linear", "mlp", "fcnet", "siren")]
configs += [{"encoding": {"name": "geoclip"}, "network": {"name": "geoclip_branches"}},
            {"encoding": {"name": "stack"},
             "network": {"name": "scale_sum", "branches": [{"name": "siren"}, {"name": "mlp"}]}}]
steps = [(str(c), lambda c=c: build_bounded(build_from_config, c, "test")) for c in configs]
steps += [(f"bundle {card.id}", lambda f=folder: bundle.load_bundle(f))
          for card, folder in bundle.list_bundles()]
assert "torch._dynamo" not in sys.modules, "imported before any build"
for name, step in steps:
    step()
    if "torch._dynamo" in sys.modules:
        print("torch._dynamo imported by", name)
        break
else:
    print(f"{len(steps)} builds, torch._dynamo never imported")
"""


def test_no_build_or_bundle_load_makes_torch_import_dynamo():
    result = subprocess.run([sys.executable, "-c", _BUILD_EVERYTHING], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "never imported" in result.stdout, result.stdout
