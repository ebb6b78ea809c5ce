"""QueueWorker's kopf operator. `kopf run -m queueworker_operator` imports this package, which
registers the handlers; builders, the policy and config import without side effects."""

import sys

# `kopf run -m queueworker_operator` imports kopf first, then this package: register the handlers then.
# Anything else (qw render, tests of builders) imports the pure modules with no kopf side effects; the
# operator's tests import queueworker_operator.handlers explicitly.
if "kopf" in sys.modules:
    from queueworker_operator import handlers as handlers
