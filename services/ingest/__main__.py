"""`python -m services.ingest`: the gRPC edge."""

from fraudshared.service import main
from services.ingest.bootstrap import bootstrap

if __name__ == "__main__":
    main("ingest", bootstrap)
