"""`python -m services.features`: point-in-time feature vectors."""

from fraudshared.service import main
from services.features.bootstrap import bootstrap

if __name__ == "__main__":
    main("features", bootstrap)
