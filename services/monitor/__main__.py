"""`python -m services.monitor`: follows predictions and labels."""

from fraudshared.service import main
from services.monitor.bootstrap import bootstrap

if __name__ == "__main__":
    main("monitor", bootstrap)
