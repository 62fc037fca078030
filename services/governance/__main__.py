"""`python -m services.governance`: the model registry, approvals and deployment to Triton.

The shared `fraudshared.service.main` is the one async main: an AsyncExitStack owns the NATS connection and
the grpc.aio server, streams are ensured at start, SIGTERM/SIGINT shut down gracefully, the bound port is
logged (``governance serving grpc_port=...``, then ``governance ready`` once its readiness checks pass).
"""

from fraudshared.service import main
from services.governance.bootstrap import SERVICE, bootstrap

if __name__ == "__main__":
    main(SERVICE, bootstrap)
